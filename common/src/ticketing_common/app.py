"""The app factory of every HTTP service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_common.auth import SessionCodec, install_sessions
from ticketing_common.config import DEFAULT_MAX_BODY_BYTES
from ticketing_common.http.error_handlers import install_error_handlers
from ticketing_common.http.health import ReadyCheck, install_health_routes, standard_ready
from ticketing_common.http.middleware import StripTrailingSlash
from ticketing_common.http.routing import ServiceApp, ServiceRoute
from ticketing_common.logs import configure_logging
from ticketing_common.metrics import Metrics
from ticketing_common.observability import TELEMETRY, RequestMetrics, install_metrics_route
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
