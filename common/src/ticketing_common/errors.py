"""The one error shape of the API, `{"errors": [{"message", "field"?}]}`, and the handlers
that render it.

Routes raise an `AppError` subclass; `ticketing_common.http.error_handlers` turns it, FastAPI's
validation errors, unknown routes and unexpected exceptions into
`{"errors": [{"message": ..., "field"?: ...}]}` with the right status. Nothing else
builds error responses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("ticketing.errors")


class AppError(Exception):
    """Base of every error a route raises: a status and one or more messages."""

    status_code: int = 500
    message: str = "Something went wrong"
    # Response headers that go with the status (`Retry-After` of a 503).
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, field: str | None = None) -> None:
        self.message = message or type(self).message
        self.field = field
        super().__init__(self.message)

    def serialize(self) -> list[dict[str, str]]:
        entry = {"message": self.message}
        if self.field is not None:
            entry["field"] = self.field
        return [entry]


class BadRequestError(AppError):
    """A business rule refused the request (400)."""

    status_code = 400
    message = "Bad request"


class ValidationFailedError(AppError):
    """Input fields failed validation: one entry per field (400)."""

    status_code = 400
    message = "Invalid request"

    def __init__(self, errors: Sequence[tuple[str | None, str]]) -> None:
        super().__init__(errors[0][1] if errors else None)
        self.errors = list(errors)

    def serialize(self) -> list[dict[str, str]]:
        return [
            {"message": message} if field is None else {"message": message, "field": field}
            for field, message in self.errors
        ]


class NotAuthorizedError(AppError):
    """Not signed in where required, or not the owner (401)."""

    status_code = 401
    message = "Not authorized"


class NotFoundError(AppError):
    """Missing resource, unknown route or malformed path id (404)."""

    status_code = 404
    message = "Not Found"


class MethodNotAllowedError(AppError):
    status_code = 405
    message = "Method not allowed"


class PayloadTooLargeError(AppError):
    """The request body is larger than the service's `MAX_BODY_BYTES` (413)."""

    status_code = 413
    message = "Request body is too large"


class UnsupportedMediaTypeError(AppError):
    """A POST, PUT or PATCH whose `Content-Type` is not `application/json` (415)."""

    status_code = 415
    message = "Content-Type must be application/json"


class ServiceBusyError(AppError):
    """Too much work already queued; the client retries after `Retry-After` (503)."""

    status_code = 503
    message = "Server busy; please retry shortly"
    headers = {"Retry-After": "1"}


class ConflictError(AppError):
    """Lost an optimistic-concurrency race; the client may retry (409)."""

    status_code = 409
    message = "The record was changed by another request; please retry"


class PaymentProviderError(AppError):
    """The payment provider is unreachable or failing (502)."""

    status_code = 502
    message = "Payment provider unavailable"


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(
        {"errors": error.serialize()}, status_code=error.status_code, headers=error.headers
    )


def _clean_message(message: str) -> str:
    # pydantic prefixes messages of custom validators with "Value error, ".
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def validation_entries(errors: Iterable[Any]) -> list[tuple[str | None, str]]:
    entries: list[tuple[str | None, str]] = []
    seen: set[str | None] = set()
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        kind = err.get("type", "")
        if kind == "json_invalid":
            return [(None, "Request body is not valid JSON")]
        source, path = (loc[0], loc[1:]) if loc else ("body", [])
        if source == "body" and not path:
            # The body as a whole: absent, or a JSON value that is not an object.
            return [(None, "Request body must be a JSON object")]
        field = ".".join(path) if path else source
        if field in seen:
            continue
        seen.add(field)
        message = "Required" if kind == "missing" else _clean_message(str(err.get("msg", "")))
        entries.append((field, message))
    return entries or [(None, "Invalid request")]


def http_error(exc: StarletteHTTPException) -> AppError:
    """The AppError for an HTTPException raised by routing (unknown route, wrong method)."""
    if exc.status_code == 404:
        return NotFoundError()
    if exc.status_code == 405:
        return MethodNotAllowedError()
    error = AppError(str(exc.detail))
    error.status_code = exc.status_code
    return error
