"""Helpers for tests of event-driven code."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ticketing_common.config import EventSettings

# Redeliveries, publish retries and the outbox re-publisher shrunk so event tests take
# fractions of a second; the give-up bound stays far above any test's wait.
TEST_EVENT_TIMINGS: dict[str, float] = {
    "EVENT_RETRY_MIN_SECONDS": 0.05,
    "EVENT_RETRY_MAX_SECONDS": 0.2,
    "EVENT_GIVE_UP_SECONDS": 60.0,
    "PUBLISH_TIMEOUT_SECONDS": 5.0,
    "OUTBOX_INTERVAL_SECONDS": 0.2,
}


def event_settings(url: str, **overrides: Any) -> EventSettings:
    """EventSettings for `url` with TEST_EVENT_TIMINGS; `overrides` win."""
    return EventSettings.model_validate({"NATS_URL": url, **TEST_EVENT_TIMINGS, **overrides})


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Wait until `check()` (a plain or an async check) holds, trying every `interval`
    seconds; AssertionError naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = check()
    if inspect.isawaitable(result):
        return bool(await result)
    return bool(result)
