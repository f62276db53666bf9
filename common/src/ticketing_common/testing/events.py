"""Helpers for tests of event-driven code."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ticketing_common.config import EventSettings


def event_settings(url: str, **overrides: Any) -> EventSettings:
    """EventSettings for `url` with retries shrunk to test scale."""
    values: dict[str, Any] = {
        "NATS_URL": url,
        "EVENT_RETRY_MIN_SECONDS": 0.1,
        "EVENT_RETRY_MAX_SECONDS": 0.4,
        "EVENT_GIVE_UP_SECONDS": 30.0,
        "PUBLISH_TIMEOUT_SECONDS": 10.0,
        "OUTBOX_INTERVAL_SECONDS": 0.2,
        **overrides,
    }
    return EventSettings.model_validate(values)


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
