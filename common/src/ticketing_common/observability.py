"""Every request of an HTTP service counted and timed; `/metrics` to scrape; the request
spans that FastAPI's own OpenTelemetry support makes (see TELEMETRY)."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.metrics import CONTENT_TYPE, UNMATCHED, Metrics

# Paths probed every few seconds by the cluster and Prometheus: no trace each.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


# FastAPI's native telemetry, for traces only: one SERVER span per request, named by
# method and route template and a child of the caller's `traceparent`, with the HTTP
# semantic-convention attributes. No spans per dependency or serialisation (cost, noise),
# no OpenTelemetry metrics (ours are Prometheus'), no OpenTelemetry log records (our logs
# go to stderr with the trace id), no exporters of its own (`configure_tracing` sets them).
# Without a configured tracer provider (OTEL_SDK_DISABLED) it is off entirely.
TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
    "exclude": _untraced,
}


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/api/tickets/{id}`), a mount's prefix, or
    `unmatched`: never the raw path, which would make a series per id."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


class RequestMetrics:
    """ASGI middleware: the request counter and latency histogram of `metrics`, by method,
    route template and status. Installed inside the other middleware, so it sees the
    scope the router fills in."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless an answer starts: an exception the outer layers turn into a 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self.metrics.observe_request(
                scope["method"], route_template(scope), status, time.perf_counter() - start
            )


def install_metrics_route(app: FastAPI, metrics: Metrics, path: str = "/metrics") -> None:
    """`GET path`: the app's metrics in Prometheus' text format. Not routed from outside:
    the gateway answers 404 for it and the Ingress sends only `/api/<svc>` to a service."""

    @app.get(path, include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)
