"""What every HTTP service's app shares: errors, sessions, no slash redirects, health."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.auth import SessionCodec, install_sessions, read_current_user
from ticketing_common.config import DEFAULT_MAX_BODY_BYTES, EventSettings
from ticketing_common.errors import (
    AppError,
    BadRequestError,
    NotAuthorizedError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
    install_error_handlers,
    route_requires_user,
)
from ticketing_common.events import EventBus, Listener, Outbox
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import Collection, Mongo
from ticketing_common.observability import TELEMETRY, RequestMetrics, install_metrics_route
from ticketing_common.tracing import configure_tracing, log_handler

ReadyCheck = Callable[[Request], Awaitable[dict[str, bool]]]


class StripTrailingSlash:
    """`/api/x/` answers like `/api/x`, without a redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                trimmed = path.rstrip("/") or "/"
                scope = {**scope, "path": trimmed, "raw_path": trimmed.encode()}
        await self.app(scope, receive, send)


# A JSON escape of a UTF-16 surrogate ("\ud800"): valid JSON syntax, but alone (not
# half of a pair) it decodes to a string no database, hash or HTTP client can encode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

# Methods whose requests carry a body. They must say it is JSON: a browser sends a POST
# cross-origin without asking first only as a form or text/plain, never as
# application/json. DELETE has no body and is always preflighted.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Deeper than any body of the API (or a Stripe event); deeper ones are refused before
# anything recurses into them.
MAX_JSON_DEPTH = 32
NESTED_TOO_DEEPLY = "Request body is nested too deeply"


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _invalid_text_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string in `value` holding a lone surrogate
    (`value` is at most MAX_JSON_DEPTH deep)."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and not _encodable(key):
            return here
        found = _invalid_text_at(item, here)
        if found is not None:
            return found
    return None


def _too_deep(value: Any) -> bool:
    """Whether `value` nests lists and objects more than MAX_JSON_DEPTH deep (one level at
    a time, no recursion: `[]` is 1 deep, `[[]]` 2)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0  # the server refuses such a request before it gets here


class _BodyTooLarge(Exception):
    pass


async def _read_bounded(request: Request, limit: int) -> list[Message]:
    """The request's body messages, refusing more than `limit` bytes as they arrive."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await request.receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            raise _BodyTooLarge()
        if not message.get("more_body", False):
            return messages


def _check_json(body: bytes) -> AppError | None:
    """400 for JSON nested too deeply or holding a lone surrogate; None otherwise (a body
    that is not JSON is the route's to refuse, or to read as it likes)."""
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return BadRequestError(NESTED_TOO_DEEPLY)
    except ValueError:
        return None
    if _too_deep(value):
        return BadRequestError(NESTED_TOO_DEEPLY)
    if _SURROGATE_ESCAPE.search(body):
        field = _invalid_text_at(value)
        if field is not None:
            return BadRequestError("Must be valid text", field=field or None)
    return None


class ServiceRoute(APIRoute):
    """The route class of every service router (`APIRouter(..., route_class=ServiceRoute)`;
    `new_app` refuses routers without it). A POST, PUT or PATCH is checked once its route
    is known (so an unknown path is 404 and a wrong method 405 first) and before its body
    is parsed, in this order: the route requires a user and the caller is signed out: 401;
    not `application/json`: 415; more than `MAX_BODY_BYTES`: 413; JSON nested deeper than
    MAX_JSON_DEPTH: 400; a string with a lone surrogate escape: 400 with its field (it
    would fail deep inside a write or a hash as a 500). The body then reaches the route
    unchanged, so a route may still read it raw."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        requires_user = route_requires_user(self)

        async def checked(request: Request) -> Response:
            if request.method not in BODY_METHODS:
                return await handler(request)
            limit: int = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
            error: AppError | None = None
            if requires_user and read_current_user(request) is None:
                error = NotAuthorizedError()
            elif not _is_json(request.headers.get("content-type")):
                error = UnsupportedMediaTypeError()
            elif _declared_length(request) > limit:
                error = PayloadTooLargeError()
            if error is not None:
                return error_response(error)
            try:
                messages = await _read_bounded(request, limit)
            except _BodyTooLarge:
                return error_response(PayloadTooLargeError())
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            error = _check_json(body)
            if error is not None:
                return error_response(error)

            async def replay() -> Message:
                return messages.pop(0) if messages else await request.receive()

            return await handler(Request(request.scope, replay))

        return checked


class ServiceApp(FastAPI):
    """A service's app: every router it includes uses `ServiceRoute`."""

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        if not issubclass(router.route_class, ServiceRoute):
            raise TypeError(
                f"router {router.prefix or '/'!r}: use APIRouter(route_class=ServiceRoute) "
                "so its writes get the shared body checks"
            )
        super().include_router(router, *args, **kwargs)


def configure_logging() -> None:
    """INFO and up to stderr, each line with its trace id (as `logging.basicConfig`, it
    does nothing when the root logger already has a handler)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(log_handler())
        root.setLevel(logging.INFO)
    # Their INFO lines repeat every HTTP call (two per Stripe call in the stripe library,
    # one per request in httpx): noise on the hot path; warnings and errors still show.
    for chatty in ("stripe", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


class EventRuntime:
    """A service's bus, outbox and listeners for one lifespan (see `event_runtime`)."""

    def __init__(self, bus: EventBus, outbox: Outbox, settings: EventSettings, replay: bool):
        self.bus = bus
        self.outbox = outbox
        self.settings = settings
        self.replay = replay

    def listen(self, *listeners: Listener[Any]) -> None:
        for listener in listeners:
            self.bus.add_listener(listener)

    async def start(self) -> None:
        """Publish what earlier runs left in the outbox, keep doing so in the background,
        and put every consumer in place (before `/readyz` can say ready, so no event
        published earlier is missed). With an in-memory database the consumers are
        recreated and replay the stream to rebuild the service's replicas."""
        await self.outbox.create_indexes()
        await self.outbox.republish()
        self.outbox.start(self.settings.OUTBOX_INTERVAL_SECONDS)
        await self.bus.start_listeners(recreate=self.replay)


@asynccontextmanager
async def event_runtime(
    service: str,
    settings: EventSettings,
    mongo: Mongo,
    outbox_collections: Iterable[Collection],
    metrics: Metrics | None = None,
) -> AsyncIterator[EventRuntime]:
    """Connect `service` to JetStream for the body of the block, then stop it all; the
    events and the outbox are counted in `metrics` (pass the app's).

    Inside: build repositories on `runtime.outbox`, `runtime.listen(...)` the listeners,
    then `await runtime.start()`.
    """
    bus = EventBus(service, settings, metrics)
    outbox = Outbox(bus, outbox_collections)
    try:
        await bus.connect()
        yield EventRuntime(bus, outbox, settings, replay=mongo.in_memory)
    finally:
        await outbox.stop()
        await bus.close()


async def standard_ready(request: Request) -> dict[str, bool]:
    """Readiness of the lifespan state's `mongo` (database) and `bus` (every consumer)."""
    checks: dict[str, bool] = {}
    mongo: Mongo | None = getattr(request.state, "mongo", None)
    if mongo is not None:
        checks["database"] = await mongo.ping()
    bus: EventBus | None = getattr(request.state, "bus", None)
    if bus is not None:
        checks["events"] = await bus.ready()
    return checks


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

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            checks = await ready(request)
        except Exception:
            logging.getLogger("ticketing.health").warning("readiness check failed", exc_info=True)
            checks = {"checks": False}
        failing = [name for name, ok in checks.items() if not ok]
        if failing:
            return JSONResponse(
                {"errors": [{"message": f"Not ready: {', '.join(failing)}"}]}, status_code=503
            )
        return JSONResponse({"status": "ready", "checks": checks})

    if metrics_path is not None:
        install_metrics_route(app, metrics, metrics_path)
    return app
