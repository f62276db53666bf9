"""The checks of a request body made before it is parsed (see `ServiceRoute`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from starlette.types import Message

from ticketing_common.errors import AppError, BadRequestError

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


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0  # the server refuses such a request before it gets here


class BodyTooLarge(Exception):
    pass


async def read_bounded(request: Request, limit: int) -> list[Message]:
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
            raise BodyTooLarge()
        if not message.get("more_body", False):
            return messages


def check_json(body: bytes) -> AppError | None:
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
