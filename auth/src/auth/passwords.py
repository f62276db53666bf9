"""argon2id hashing on a small executor of its own, so the event loop keeps serving and
memory stays bounded: each hash holds `memory_kib` while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ticketing_common.errors import ServiceBusyError

T = TypeVar("T")


class Passwords:
    """At most `concurrency` hashes run at once (the executor's threads) and `queue` more
    wait; past that a request is refused at once (503 with `Retry-After`) instead of
    queueing memory and latency without bound."""

    def __init__(self, time_cost: int, memory_kib: int, concurrency: int, queue: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._capacity = concurrency + queue
        self._admitted = 0  # running or waiting; only the event loop's thread counts it
        # Verified when the email is unknown, so both failures cost the same time.
        self._dummy = self._hasher.hash("not-a-real-password")

    async def _run(self, work: Callable[[], T]) -> T:
        if self._admitted >= self._capacity:
            raise ServiceBusyError()
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    async def aclose(self) -> None:
        """Stop the hashing threads; hashes still queued are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
