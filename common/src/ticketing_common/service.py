"""What every HTTP service's app shares: errors, sessions, no slash redirects, health."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.auth import SessionCodec, install_sessions
from ticketing_common.config import EventSettings
from ticketing_common.errors import install_error_handlers
from ticketing_common.events import EventBus, Listener, Outbox
from ticketing_common.mongo import Collection, Mongo

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


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _invalid_text_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string in `value` holding a lone surrogate."""
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


class RejectInvalidText:
    """A JSON body with a lone surrogate escape is 400 with the field, before any route
    runs: such a string would otherwise fail deep inside a write (a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if _SURROGATE_ESCAPE.search(body):
            try:
                field = _invalid_text_at(json.loads(body))
            except ValueError:
                field = None  # not JSON: the route reports that
            if field is not None:
                entry = {"message": "Must be valid text"}
                if field:
                    entry["field"] = field
                await JSONResponse({"errors": [entry]}, status_code=400)(scope, receive, send)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


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
    service: str, settings: EventSettings, mongo: Mongo, outbox_collections: Iterable[Collection]
) -> AsyncIterator[EventRuntime]:
    """Connect `service` to JetStream for the body of the block, then stop it all.

    Inside: build repositories on `runtime.outbox`, `runtime.listen(...)` the listeners,
    then `await runtime.start()`.
    """
    bus = EventBus(service, settings)
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
) -> FastAPI:
    """A FastAPI app with the shared error handling, sessions, `/healthz` and `/readyz`.

    `ready` returns named checks (by default those of `standard_ready`); `/readyz` is 200
    when all pass, else 503 naming the failing ones.
    """
    configure_logging()
    app = FastAPI(title=title, lifespan=lifespan, redirect_slashes=False)
    install_error_handlers(app)
    app.add_middleware(RejectInvalidText)
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

    return app
