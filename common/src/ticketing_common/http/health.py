"""`/healthz` and `/readyz` of every service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ticketing_common.events.bus import EventBus
from ticketing_common.mongo import Mongo

ReadyCheck = Callable[[Request], Awaitable[dict[str, bool]]]


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


def install_health_routes(app: FastAPI, ready: ReadyCheck) -> None:
    """`GET /healthz` (the process answers) and `GET /readyz`: 200 when every check of
    `ready` passes, else 503 naming the failing ones (an exception counts as failing)."""

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
