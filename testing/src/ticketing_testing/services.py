"""A service's app under test: its settings at test scale, and a client with its lifespan run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from ticketing_common.config import EventSettings
from ticketing_common.testing.events import TEST_EVENT_TIMINGS
from ticketing_common.testing.session import TEST_JWT_KEY

S = TypeVar("S", bound=EventSettings)


def service_settings(settings_type: type[S], nats_url: str, **overrides: Any) -> S:
    """`settings_type` for a test: cookies signed with TEST_JWT_KEY, an in-memory database,
    the broker at `nats_url`, TEST_EVENT_TIMINGS; `overrides` win."""
    values: dict[str, Any] = {
        "JWT_KEY": TEST_JWT_KEY,
        "MONGO_URI": "memory://",
        "NATS_URL": nats_url,
        **TEST_EVENT_TIMINGS,
        **overrides,
    }
    return settings_type.model_validate(values)


@asynccontextmanager
async def running_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An httpx client on `app` with its lifespan running (ASGITransport alone does not run
    it), so requests see the lifespan state."""
    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="http://test") as http,
    ):
        yield http
