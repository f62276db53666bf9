from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from client.api import ApiError, get_api, new_http_client
from client.config import Settings, get_settings
from client.models import format_price
from client.pages import PageError, render_error
from client.routes import router
from ticketing_common.app import new_app
from ticketing_common.errors import AppError, error_response, http_error
from ticketing_common.metrics import Metrics

PACKAGE_DIR = Path(__file__).parent
logger = logging.getLogger("client")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# Where the real Stripe.js fetches, frames (Elements, 3-D Secure) and scripts from, beside
# its own origin (Stripe's CSP guide).
STRIPE_SOURCES = {
    "script-src": ["https://*.js.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
    "frame-src": ["https://*.js.stripe.com", "https://hooks.stripe.com"],
    "img-src": ["https://*.stripe.com"],
}


def content_security_policy(stripe_js_url: str) -> str:
    """Scripts, styles and calls from this site and Stripe.js's origin only; no inline
    script, no plugins, no framing of the pages, forms post here only."""
    parts = urlsplit(stripe_js_url)
    stripe = f"{parts.scheme}://{parts.netloc}"
    extra = STRIPE_SOURCES if parts.hostname == "js.stripe.com" else {}
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", stripe],
        "connect-src": ["'self'", stripe],
        "frame-src": [stripe],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    for name, sources in extra.items():
        directives[name] = directives[name] + sources
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def create_app(
    settings: Settings | None = None,
    *,
    api_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The browser client. `api_transport` replaces the network to the gateway (tests)."""
    settings = settings or get_settings()
    metrics = Metrics("client")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        http = new_http_client(
            settings.API_BASE_URL, settings.API_TIMEOUT_SECONDS, transport=api_transport
        )
        # Its metrics on a port of their own, never on the public one (see METRICS_PORT).
        server = None if settings.METRICS_PORT is None else metrics.serve(settings.METRICS_PORT)
        try:
            yield {"http": http}
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            await http.aclose()

    async def ready(request: Request) -> dict[str, bool]:
        # Any HTTP answer means the gateway is there; what sits behind it has its own probes.
        http: httpx.AsyncClient = request.state.http
        try:
            await http.get("/api/users/currentuser", timeout=2.0)
        except httpx.HTTPError:
            return {"gateway": False}
        return {"gateway": True}

    app = new_app(
        title="Ticketing client",
        lifespan=lifespan,
        sessions=None,
        ready=ready,
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=metrics,
        metrics_path=None,
    )
    # httpx logs every request at INFO; the access log already shows each page.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app.state.settings = settings
    templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
    # `{{ ticket.price | dollars }}`: a price as the pages show it.
    templates.env.filters["dollars"] = format_price
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.include_router(router)
    install_page_errors(app)
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(settings.STRIPE_JS_URL),
    }

    @app.middleware("http")
    async def add_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            # Pages show one person's data: no shared caches, revalidate every time.
            response.headers.setdefault("Cache-Control", "private, no-cache")
        return response

    return app


def install_page_errors(app: FastAPI) -> None:
    """Errors of pages render as HTML pages with the status; `/api/...` keeps JSON."""

    @app.exception_handler(PageError)
    async def handle_page_error(request: Request, exc: PageError) -> HTMLResponse:
        return render_error(
            request, exc.status_code, exc.messages, user=exc.user, user_known=exc.user_known
        )

    @app.exception_handler(ApiError)
    async def handle_api_error(request: Request, exc: ApiError) -> HTMLResponse:
        return render_error(request, exc.status_code, exc.messages)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http(request: Request, exc: StarletteHTTPException) -> Response:
        error = http_error(exc)
        if request.url.path.startswith("/api/"):
            return error_response(error)
        try:
            user = await get_api(request).current_user()
        except ApiError:
            return render_error(request, error.status_code, [error.message])
        return render_error(request, error.status_code, [error.message], user=user, user_known=True)

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        if request.url.path.startswith("/api/"):
            return error_response(AppError())
        return render_error(request, 500, [AppError.message])
