"""A background round repeated every few seconds (the outbox re-publisher, the expiry
sweep, the refund reconciler): one failed round is logged and the next one comes anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("ticketing.periodic")


class Periodic:
    """Runs `round()` now (or after `interval` with `wait_first`) and then every `interval`
    seconds, until `stop()`."""

    def __init__(
        self,
        name: str,
        round: Callable[[], Awaitable[Any]],
        interval: float,
        *,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self.round = round
        self.interval = interval
        self.wait_first = wait_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self.wait_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.round()
            except Exception:
                logger.exception("%s: round failed; trying again in %ss", self.name, self.interval)
            await asyncio.sleep(self.interval)
