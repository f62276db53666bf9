"""Sign-in and sign-up are limited per email and per client address (docs/SPEC.md §2):
counters in Redis shared by every replica, 429 with `Retry-After` once a budget is spent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient, Response

from auth.app import create_app
from auth.config import Settings

SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"
CURRENT = "/api/users/currentuser"
TOO_MANY = {"errors": [{"message": "Too many attempts; please try again later"}]}
INVALID = {"errors": [{"message": "Invalid credentials"}]}
PASSWORD = "password"

Peer = Callable[[str], AsyncClient]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Peer]:
    """One app instance; `peer(address)` is a client on it whose socket peer is `address`."""
    async with AsyncExitStack() as stack:
        manager = await stack.enter_async_context(
            LifespanManager(create_app(settings), startup_timeout=30)
        )

        def peer(address: str) -> AsyncClient:
            transport = ASGITransport(manager.app, client=(address, 40000))
            http = AsyncClient(transport=transport, base_url="https://test")
            stack.push_async_callback(http.aclose)
            return http

        yield peer


@pytest.fixture
def limited(settings: Settings) -> Callable[..., Settings]:
    def make(**limits: Any) -> Settings:
        return Settings.model_validate({**settings.model_dump(), **limits})

    return make


async def sign_up(http: AsyncClient, email: str) -> Response:
    return await http.post(SIGNUP, json={"email": email, "password": PASSWORD})


async def sign_in(
    http: AsyncClient, email: str, password: str = "wrong", forwarded_for: str | None = None
) -> Response:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return await http.post(SIGNIN, json={"email": email, "password": password}, headers=headers)


def assert_too_many(response: Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == TOO_MANY
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert "set-cookie" not in response.headers


class TestSignInPerEmail:
    async def test_the_eleventh_failure_is_429_and_then_the_right_password_too(self, settings):
        async with running(settings) as peer:
            http = peer("203.0.113.7")
            assert (await sign_up(http, "me@test.com")).status_code == 201

            for _ in range(10):
                failed = await sign_in(http, "me@test.com")
                assert failed.status_code == 400 and failed.json() == INVALID

            assert_too_many(await sign_in(http, "me@test.com"), 900)
            right = await sign_in(http, "me@test.com", PASSWORD)
            assert_too_many(right, 900)
            # Another address does not help: the email's budget is spent.
            assert_too_many(await sign_in(peer("198.51.100.9"), "me@test.com", PASSWORD), 900)

    async def test_the_right_password_works_again_once_the_window_passes(self, limited):
        settings = limited(RATE_LIMIT_WINDOW_SECONDS=1, SIGNIN_FAILURES_PER_EMAIL=2)
        async with running(settings) as peer:
            http = peer("203.0.113.7")
            await sign_up(http, "me@test.com")
            for _ in range(2):
                assert (await sign_in(http, "me@test.com")).status_code == 400
            assert_too_many(await sign_in(http, "me@test.com", PASSWORD), 1)

            await asyncio.sleep(1.2)

            assert (await sign_in(http, "me@test.com", PASSWORD)).status_code == 200

    async def test_an_unknown_email_is_limited_like_a_known_one(self, limited):
        async with running(limited(SIGNIN_FAILURES_PER_EMAIL=3)) as peer:
            http = peer("203.0.113.7")
            for _ in range(3):
                assert (await sign_in(http, "nobody@test.com")).json() == INVALID
            assert_too_many(await sign_in(http, "nobody@test.com"), 900)

    async def test_a_success_is_no_failure_and_clears_the_emails_count(self, limited):
        settings = limited(SIGNIN_FAILURES_PER_EMAIL=3, SIGNIN_FAILURES_PER_ADDRESS=4)
        async with running(settings) as peer:
            http = peer("203.0.113.7")
            await sign_up(http, "me@test.com")
            for _ in range(2):
                assert (await sign_in(http, "me@test.com")).status_code == 400
            for _ in range(5):
                assert (await sign_in(http, "me@test.com", PASSWORD)).status_code == 200

            # The email starts afresh (3 more failures), the address kept its 2 (not the
            # successes): 2 failures more spend it.
            assert (await sign_in(http, "me@test.com")).status_code == 400
            assert (await sign_in(http, "me@test.com")).status_code == 400
            assert_too_many(await sign_in(http, "me@test.com"), 900)

    async def test_a_malformed_body_is_400_and_counts_nothing(self, limited):
        async with running(limited(SIGNIN_FAILURES_PER_ADDRESS=1)) as peer:
            http = peer("203.0.113.7")
            for _ in range(3):
                bad = await http.post(SIGNIN, json={"email": "nope", "password": "x"})
                assert bad.status_code == 400
                assert bad.json()["errors"][0]["field"] == "email"
            assert (await sign_in(http, "me@test.com")).json() == INVALID
            assert_too_many(await sign_in(http, "me@test.com"), 900)


class TestSignInPerAddress:
    async def test_another_email_is_unaffected_until_the_address_budget_is_spent(self, limited):
        settings = limited(SIGNIN_FAILURES_PER_EMAIL=3, SIGNIN_FAILURES_PER_ADDRESS=5)
        async with running(settings) as peer:
            http = peer("203.0.113.7")
            for _ in range(3):
                assert (await sign_in(http, "a@test.com")).status_code == 400
            assert_too_many(await sign_in(http, "a@test.com"), 900)

            # b@ has its own budget, but the address has 2 failures left.
            assert (await sign_in(http, "b@test.com")).status_code == 400
            assert (await sign_in(http, "b@test.com")).status_code == 400
            assert_too_many(await sign_in(http, "b@test.com"), 900)
            assert_too_many(await sign_in(http, "c@test.com"), 900)
            # Another address still signs in with c@'s budget untouched.
            assert (await sign_in(peer("198.51.100.9"), "c@test.com")).json() == INVALID

    async def test_ipv6_addresses_of_one_64_block_share_a_budget(self, limited):
        async with running(limited(SIGNIN_FAILURES_PER_ADDRESS=2)) as peer:
            assert (await sign_in(peer("2001:db8:1:2::1"), "a@test.com")).status_code == 400
            assert (await sign_in(peer("2001:db8:1:2::ffff"), "b@test.com")).status_code == 400
            assert_too_many(await sign_in(peer("2001:db8:1:2:abcd::9"), "c@test.com"), 900)
            assert (await sign_in(peer("2001:db8:1:3::1"), "c@test.com")).status_code == 400


class TestClientAddress:
    async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(self, limited):
        async with running(limited(SIGNIN_FAILURES_PER_ADDRESS=2)) as peer:
            http = peer("10.0.0.5")
            for n in range(2):
                forged = await sign_in(http, f"{n}@test.com", forwarded_for=f"192.0.2.{n}")
                assert forged.status_code == 400
            # Each request named another client; the peer's budget is spent all the same.
            assert_too_many(await sign_in(http, "x@test.com", forwarded_for="192.0.2.9"), 900)

    async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(self, limited):
        settings = limited(SIGNIN_FAILURES_PER_ADDRESS=2, TRUSTED_PROXIES="10.0.0.0/8")
        async with running(settings) as peer:
            proxy = peer("10.0.0.5")
            for email in ("a@test.com", "b@test.com"):
                failed = await sign_in(proxy, email, forwarded_for="192.0.2.1")
                assert failed.status_code == 400
            assert_too_many(await sign_in(proxy, "c@test.com", forwarded_for="192.0.2.1"), 900)

            # Another client behind the same proxy is unaffected.
            other = await sign_in(proxy, "c@test.com", forwarded_for="192.0.2.2")
            assert other.status_code == 400
            # A hop the client wrote itself (left of what the proxy appended) changes
            # nothing: the address is still the one the proxy saw.
            spoofed = await sign_in(proxy, "d@test.com", forwarded_for="198.51.100.1, 192.0.2.1")
            assert_too_many(spoofed, 900)
            # Through two trusted proxies, the client is the last untrusted hop.
            chained = await sign_in(
                proxy, "d@test.com", forwarded_for="198.51.100.1, 192.0.2.1, 10.1.1.1"
            )
            assert_too_many(chained, 900)


class TestSharedState:
    async def test_two_instances_on_one_redis_share_the_limits(self, limited):
        settings = limited(SIGNIN_FAILURES_PER_EMAIL=4)
        async with running(settings) as first, running(settings) as second:
            await sign_up(first("203.0.113.7"), "me@test.com")
            for n in range(4):
                replica = (first, second)[n % 2]
                assert (await sign_in(replica("203.0.113.7"), "me@test.com")).status_code == 400

            assert_too_many(await sign_in(first("203.0.113.7"), "me@test.com", PASSWORD), 900)
            assert_too_many(await sign_in(second("203.0.113.7"), "me@test.com", PASSWORD), 900)

    async def test_concurrent_failures_never_overshoot_the_limit(self, limited):
        async with running(limited(SIGNIN_FAILURES_PER_EMAIL=5)) as peer:
            http = peer("203.0.113.7")
            responses = await asyncio.gather(*(sign_in(http, "me@test.com") for _ in range(12)))
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [400] * 5 + [429] * 7, statuses


class TestSignUp:
    async def test_sign_ups_from_one_address_are_limited_and_the_refused_one_creates_nothing(
        self, limited
    ):
        async with running(limited(SIGNUPS_PER_ADDRESS=3)) as peer:
            http = peer("203.0.113.7")
            for n in range(3):
                assert (await sign_up(http, f"user{n}@test.com")).status_code == 201

            assert_too_many(await sign_up(http, "user3@test.com"), 900)
            # Nothing was written: from another address the email is still free.
            assert (await sign_up(peer("198.51.100.9"), "user3@test.com")).status_code == 201

    async def test_sign_ups_of_one_email_are_limited_from_any_address(self, limited):
        async with running(limited(SIGNUPS_PER_EMAIL=2)) as peer:
            assert (await sign_up(peer("203.0.113.1"), "me@test.com")).status_code == 201
            in_use = await sign_up(peer("203.0.113.2"), "me@test.com")
            assert in_use.json() == {"errors": [{"message": "Email in use"}]}
            assert_too_many(await sign_up(peer("203.0.113.3"), "me@test.com"), 900)
            assert (await sign_up(peer("203.0.113.3"), "other@test.com")).status_code == 201
