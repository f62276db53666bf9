"""Abuse limits on sign-in and sign-up (docs/SPEC.md §2).

Counters live in Redis, so every replica shares them. Each is a fixed window that starts
at its first counted attempt (`RATE_LIMIT_WINDOW_SECONDS`). An attempt is taken from every
budget it touches (its email's and its client address's) before any work, in one Lua
script: concurrent attempts cannot overshoot a limit, and a refused one costs no hash.
Work that ends in a fault (a busy hasher, a bug) gives the attempt back: only the
client's own attempts count.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth.config import Network, Settings
from ticketing_common.errors import AppError, BadRequestError

PREFIX = "auth:limit:"

# KEYS: the counters; ARGV: the window in ms, then each counter's limit. Returns 0 when the
# attempt was counted in every one, else the ms until the longest blocking window ends
# (counting nothing).
TAKE = """
local blocked = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    if ttl > blocked then blocked = ttl end
  end
end
if blocked > 0 then return blocked end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
"""

# Give one attempt back to each counter still there (one that expired stays gone), or
# clear it when its ARGV is "clear".
GIVE_BACK = """
for i, key in ipairs(KEYS) do
  if ARGV[i] == 'clear' then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
"""


class TooManyAttemptsError(AppError):
    """A limit of §2 is spent; the client may try again after `Retry-After` seconds (429)."""

    status_code = 429
    message = "Too many attempts; please try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.headers = {"Retry-After": str(retry_after)}


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the socket peer, unless the peer is a trusted proxy; then the
    last X-Forwarded-For hop that is not itself a trusted proxy. Taken from the right, as
    each proxy appends the address it saw: what a client writes into the header itself
    is further left and never chosen over a hop a trusted proxy recorded."""
    address = peer or "unknown"
    if not trusted or not _within(address, trusted):
        return address
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = hop
        if not _within(hop, trusted):
            break
    return address


def _parse(address: str) -> IPv4Address | IPv6Address | None:
    try:
        parsed = ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    return parsed


def _within(address: str, networks: Sequence[Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


def address_key(address: str) -> str:
    """The counter name of an address: IPv6 by its /64 (what one subscriber is given,
    so a client cannot step around the limit inside its own block)."""
    parsed = _parse(address)
    if parsed is None:
        return address[:100]  # not an address (a test client's "testclient"): as it is
    if isinstance(parsed, IPv6Address):
        return str(ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def email_key(email: str) -> str:
    # Hashed: no addresses in Redis, and a bounded key.
    return hashlib.sha256(email.encode()).hexdigest()


@dataclass(frozen=True)
class Budget:
    key: str
    limit: int


class Budgets(NamedTuple):
    """The two budgets an attempt counts against."""

    email: Budget
    address: Budget


class Attempt:
    """One counted attempt (see `Limits.attempt`)."""

    def __init__(self, limits: Limits, budgets: Sequence[Budget]) -> None:
        self._limits = limits
        self._budgets = budgets

    async def forgive(self, *, clear: Iterable[Budget] = ()) -> None:
        """Not a failure after all: give the attempt back, and clear the `clear` counters."""
        await self._limits.give_back(self._budgets, clear=clear)


class Limits:
    """The §2 limits on `redis`; lives in auth's lifespan state."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._take = redis.register_script(TAKE)
        self._give_back = redis.register_script(GIVE_BACK)

    def sign_in(self, email: str, address: str) -> Budgets:
        """Failed sign-ins of the email and of the address."""
        return Budgets(
            Budget(
                f"{PREFIX}signin:email:{email_key(email)}", self.settings.SIGNIN_FAILURES_PER_EMAIL
            ),
            Budget(
                f"{PREFIX}signin:addr:{address_key(address)}",
                self.settings.SIGNIN_FAILURES_PER_ADDRESS,
            ),
        )

    def sign_up(self, email: str, address: str) -> Budgets:
        """Sign-ups of the email and of the address."""
        return Budgets(
            Budget(f"{PREFIX}signup:email:{email_key(email)}", self.settings.SIGNUPS_PER_EMAIL),
            Budget(
                f"{PREFIX}signup:addr:{address_key(address)}", self.settings.SIGNUPS_PER_ADDRESS
            ),
        )

    @asynccontextmanager
    async def attempt(self, *budgets: Budget) -> AsyncIterator[Attempt]:
        """Count an attempt in every budget for the block, or raise 429 when one is spent.
        The block's refusal (400) stays counted; any other exception gives it back."""
        window_ms = self.settings.RATE_LIMIT_WINDOW_SECONDS * 1000
        blocked = await self._take(
            keys=[b.key for b in budgets], args=[window_ms, *(b.limit for b in budgets)]
        )
        if int(blocked) > 0:
            raise TooManyAttemptsError(max(1, math.ceil(int(blocked) / 1000)))
        attempt = Attempt(self, budgets)
        try:
            yield attempt
        except BadRequestError:
            raise
        except BaseException:
            await self.give_back(budgets)
            raise

    async def give_back(self, budgets: Iterable[Budget], *, clear: Iterable[Budget] = ()) -> None:
        cleared = {b.key for b in clear}
        keys = [b.key for b in budgets]
        await self._give_back(keys=keys, args=["clear" if k in cleared else "" for k in keys])

    async def ready(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self.redis.aclose()


async def connect_redis(url: str, timeout: float = 30.0) -> Redis:
    """A client on `url` once Redis answers, retrying for `timeout` seconds (a Redis still
    starting). Each command gives up after a few seconds: a hung Redis fails a sign-in
    (500) rather than holding it."""
    redis: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await redis.ping()
            return redis
        except (RedisError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                await redis.aclose()
                raise RuntimeError(f"Redis at {url!r} unreachable for {timeout:.0f}s") from None
            await asyncio.sleep(1)
