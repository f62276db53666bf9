"""What every HTTP service's app shares: errors, sessions, no slash redirects, health."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ticketing_common.auth import SessionCodec, install_sessions
from ticketing_common.errors import install_error_handlers

ReadyCheck = Callable[[Request], Awaitable[dict[str, bool]]]


class StripTrailingSlash:
    """`/api/x/` answers like `/api/x`, without a redirect (SPEC §1)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                trimmed = path.rstrip("/") or "/"
                scope = {**scope, "path": trimmed, "raw_path": trimmed.encode()}
        await self.app(scope, receive, send)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def new_app(
    *,
    title: str,
    lifespan: Any,
    sessions: SessionCodec | None,
    ready: ReadyCheck,
) -> FastAPI:
    """A FastAPI app with the shared error handling, sessions, `/healthz` and `/readyz`.

    `ready` returns named checks; `/readyz` is 200 when all pass, else 503 naming the
    failing ones.
    """
    configure_logging()
    app = FastAPI(title=title, lifespan=lifespan, redirect_slashes=False)
    install_error_handlers(app)
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
