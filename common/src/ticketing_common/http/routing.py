"""The route class and app class of every service: body checks on every write."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from ticketing_common.auth import read_current_user, route_requires_user
from ticketing_common.config import DEFAULT_MAX_BODY_BYTES
from ticketing_common.errors import (
    AppError,
    NotAuthorizedError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
)
from ticketing_common.http.body_checks import (
    BODY_METHODS,
    BodyTooLarge,
    check_json,
    declared_length,
    is_json,
    read_bounded,
)


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
            elif not is_json(request.headers.get("content-type")):
                error = UnsupportedMediaTypeError()
            elif declared_length(request) > limit:
                error = PayloadTooLargeError()
            if error is not None:
                return error_response(error)
            try:
                messages = await read_bounded(request, limit)
            except BodyTooLarge:
                return error_response(PayloadTooLargeError())
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            error = check_json(body)
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
