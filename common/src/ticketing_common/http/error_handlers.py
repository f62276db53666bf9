"""The exception handlers that render every error of an app in the one error shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing_common.auth import read_current_user, route_requires_user
from ticketing_common.errors import (
    AppError,
    NotAuthorizedError,
    ValidationFailedError,
    error_response,
    http_error,
    validation_entries,
)

logger = logging.getLogger("ticketing.errors")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of `app` in the one error shape."""

    @app.exception_handler(AppError)
    async def handle_app_error(request: Request, exc: AppError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def handle_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses the body before it runs dependencies; a protected route still
        # answers 401 first, before its body is validated, whatever the body holds.
        route = request.scope.get("route")  # the route the router matched
        if route_requires_user(route) and read_current_user(request) is None:
            return error_response(NotAuthorizedError())
        return error_response(ValidationFailedError(validation_entries(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def handle_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(http_error(exc))

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(AppError())
