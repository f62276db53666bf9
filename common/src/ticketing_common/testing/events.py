"""Helpers for tests of event-driven code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `check()` holds; AssertionError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
