"""A service's app under test: its settings at test scale, and the app running (its
lifespan included) with an httpx client on it and the state its lifespan yielded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from starlette.types import ASGIApp, Receive, Scope, Send

from ticketing_common.config import EventSettings
from ticketing_testing.events import TEST_EVENT_TIMINGS
from ticketing_testing.session import TEST_JWT_KEY

S = TypeVar("S", bound=EventSettings)
T = TypeVar("T")


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


@dataclass(frozen=True)
class ServiceUnderTest(Generic[S]):
    """What the plugin's `settings`, `client` and `probe` fixtures need of a service: a
    service's tests name theirs in a `service_under_test` fixture (in their conftest.py)."""

    name: str
    settings_type: type[S]
    create_app: Callable[[S], FastAPI]


@dataclass(frozen=True)
class RunningService:
    """An app running in the test: a client on it, and its lifespan state (what the
    lifespan yielded: the repositories, the bus, ... that requests see in `request.state`)."""

    http: AsyncClient
    state: Mapping[str, Any]

    def get(self, name: str, kind: type[T]) -> T:
        """The lifespan state's `name`, checked to be a `kind`."""
        value = self.state[name]
        assert isinstance(value, kind), f"state {name!r} is a {type(value).__name__}"
        return value


class _LifespanState:
    """Keeps the lifespan scope's `state`: the ASGI lifespan-state extension's dict, which
    the server (here LifespanManager) passes in and Starlette fills with what the app's
    lifespan yields, and of which every request gets a copy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.state = scope["state"]
        await self.app(scope, receive, send)


@asynccontextmanager
async def running_service(
    app: FastAPI, base_url: str = "http://test"
) -> AsyncIterator[RunningService]:
    """`app` with its lifespan running (ASGITransport alone does not run it), a client on
    it at `base_url`, and the lifespan's state."""
    watched = _LifespanState(app)
    async with (
        LifespanManager(watched, startup_timeout=30, shutdown_timeout=30) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url=base_url) as http,
    ):
        assert watched.state is not None, "the server passed no lifespan state"
        yield RunningService(http, MappingProxyType(watched.state))


@asynccontextmanager
async def running_client(app: FastAPI, base_url: str = "http://test") -> AsyncIterator[AsyncClient]:
    """An httpx client on `app` with its lifespan running, so requests see the lifespan
    state."""
    async with running_service(app, base_url) as running:
        yield running.http
