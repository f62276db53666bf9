"""The app of every HTTP service: `new_app` (the shared HTTP behaviour) and, on it, the
declarative `Service` with its lifespan (`app_factory`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from fastapi import APIRouter, FastAPI, Request

from ticketing_common.auth import SessionCodec, install_sessions
from ticketing_common.config import DEFAULT_MAX_BODY_BYTES, EventSettings
from ticketing_common.events.bus import EventBus
from ticketing_common.events.listener import Listener
from ticketing_common.events.outbox import Outbox
from ticketing_common.events.runtime import EventRuntime, event_runtime
from ticketing_common.http.error_handlers import install_error_handlers
from ticketing_common.http.health import ReadyCheck, install_health_routes, standard_ready
from ticketing_common.http.middleware import StripTrailingSlash
from ticketing_common.http.routing import ServiceApp, ServiceRoute
from ticketing_common.logs import configure_logging
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import Collection, Database, Mongo, MongoConnector, connect_mongo
from ticketing_common.observability import TELEMETRY, RequestMetrics, install_metrics_route
from ticketing_common.state import ServiceState, lifespan_state
from ticketing_common.tracing import configure_tracing


def new_app(
    *,
    title: str,
    lifespan: Any,
    sessions: SessionCodec | None,
    ready: ReadyCheck = standard_ready,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    metrics: Metrics | None = None,
    metrics_path: str | None = "/metrics",
) -> FastAPI:
    """A FastAPI app with the shared error handling, sessions, body checks (see
    `ServiceRoute`; `max_body_bytes` is the service's `MAX_BODY_BYTES`), `/healthz`,
    `/readyz`, and every request traced (FastAPI's own spans, see TELEMETRY) and counted in
    `metrics` (the one the app's
    `event_runtime` gets too), which `GET metrics_path` shows (None: not on this app).

    `ready` returns named checks (by default those of `standard_ready`); `/readyz` is 200
    when all pass, else 503 naming the failing ones.
    """
    configure_logging()
    metrics = metrics or Metrics(title)
    configure_tracing(metrics.service)
    app = ServiceApp(title=title, lifespan=lifespan, redirect_slashes=False, telemetry=TELEMETRY)
    app.router.route_class = ServiceRoute
    app.state.max_body_bytes = max_body_bytes
    app.state.metrics = metrics
    install_error_handlers(app)
    # Inside the slash normaliser (added later, so outer), to see the scope it routes.
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(StripTrailingSlash)
    if sessions is not None:
        install_sessions(app, sessions)
    install_health_routes(app, ready)
    if metrics_path is not None:
        install_metrics_route(app, metrics, metrics_path)
    return app


class ServiceSettings(Protocol):
    """What the factory reads of a service's settings (every HTTP service with a database)."""

    @property
    def MONGO_URI(self) -> str: ...
    @property
    def JWT_KEY(self) -> str: ...
    @property
    def JWT_KEY_PREVIOUS(self) -> str | None: ...
    @property
    def MAX_BODY_BYTES(self) -> int: ...


C = TypeVar("C", bound=ServiceSettings)
C_contra = TypeVar("C_contra", bound=ServiceSettings, contravariant=True)
S = TypeVar("S", bound=ServiceState)


@dataclass(frozen=True)
class Opened(Generic[C]):
    """What a service's state is built from, once its database and bus are open."""

    settings: C
    mongo: Mongo
    metrics: Metrics
    events: EventRuntime | None
    _closing: AsyncExitStack

    @property
    def db(self) -> Database:
        return self.mongo.db

    @property
    def outbox(self) -> Outbox:
        return self._events().outbox

    @property
    def bus(self) -> EventBus:
        return self._events().bus

    def base(self) -> ServiceState:
        """The fields every state has: `State(**opened.base(), orders=...)`."""
        return {"mongo": self.mongo, "bus": None if self.events is None else self.events.bus}

    def close_with(self, close: Callable[[], Awaitable[object]]) -> None:
        """Call `close` when the service stops: after its listeners and tasks have stopped
        (they may still use what it closes), before the database closes."""
        self._closing.push_async_callback(close)

    def _events(self) -> EventRuntime:
        if self.events is None:
            raise RuntimeError("the service declares no outbox collections, so has no bus")
        return self.events


class Task(Protocol):
    """A background loop of a service (`Periodic`, or something that runs one)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Service(Generic[C, S]):
    """A service's app, declared: `create_app = app_factory(Service(...), get_settings)`.

    Its lifespan connects the database, and with `outbox` the bus (`event_runtime`, over
    the collections `outbox(db)` names); `state` builds the service's `State` (its
    repositories, indexes created); the `listeners` of that state are bound and every
    consumer put in place; the `tasks` start; the state is yielded. Stopping undoes it in
    reverse. `ready` adds checks to `/readyz` beside the database and the bus.
    """

    name: str
    title: str
    router: APIRouter
    state: Callable[[Opened[C]], Awaitable[S]]
    outbox: Callable[[Database], Iterable[Collection]] | None = None
    listeners: Callable[[S], Iterable[Listener[Any]]] = lambda state: ()
    tasks: Callable[[S], Iterable[Task]] = lambda state: ()
    ready: Mapping[str, Callable[[S], Awaitable[bool]]] = field(default_factory=dict)
    # Read-only sessions (the cookie's keys) unless given: auth issues the cookie.
    sessions: Callable[[C], SessionCodec] | None = None


def reading_sessions(settings: ServiceSettings) -> SessionCodec:
    """Sessions verified, never issued: every service but auth."""
    return SessionCodec(jwt_key=settings.JWT_KEY, previous_jwt_key=settings.JWT_KEY_PREVIOUS)


class AppFactory(Protocol[C_contra]):
    """Every service's public seam: `create_app(settings, connect=...)`; tests pass their
    settings and connector, uvicorn's `--factory` calls it with none."""

    def __call__(
        self, settings: C_contra | None = None, *, connect: MongoConnector = connect_mongo
    ) -> FastAPI: ...


def app_factory(service: Service[C, S], get_settings: Callable[[], C]) -> AppFactory[C]:
    """`create_app` of `service`, reading its settings with `get_settings` when given none."""

    def create_app(
        settings: C | None = None, *, connect: MongoConnector = connect_mongo
    ) -> FastAPI:
        """The app; `connect` opens its database (a test may pass its own connector)."""
        return service_app(service, settings or get_settings(), connect)

    return create_app


def service_app(service: Service[C, S], settings: C, connect: MongoConnector) -> FastAPI:
    """The app of `service` with `settings`, its database opened by `connect`."""
    metrics = Metrics(service.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[S]:
        async with AsyncExitStack() as stack:
            mongo = await connect(settings.MONGO_URI, service.name)
            stack.push_async_callback(mongo.close)
            closing = await stack.enter_async_context(AsyncExitStack())
            events = None
            if service.outbox is not None:
                if not isinstance(settings, EventSettings):
                    raise TypeError(f"{service.name}: an outbox needs EventSettings")
                events = await stack.enter_async_context(
                    event_runtime(service.name, settings, mongo, service.outbox(mongo.db), metrics)
                )
            state = await service.state(Opened(settings, mongo, metrics, events, closing))
            if events is not None:
                events.listen(*service.listeners(state))
                await events.start()
            for task in service.tasks(state):
                task.start()
                stack.push_async_callback(task.stop)
            yield state

    async def ready(request: Request) -> dict[str, bool]:
        checks = await standard_ready(request)
        state = cast(S, lifespan_state(request, ServiceState))
        for name, check in service.ready.items():
            checks[name] = await check(state)
        return checks

    app = new_app(
        title=service.title,
        lifespan=lifespan,
        sessions=(service.sessions or reading_sessions)(settings),
        ready=ready,
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=metrics,
    )
    app.include_router(service.router)
    return app
