"""Readers of the single error shape `{"errors": [{"message", "field"?}]}` in responses."""

from __future__ import annotations

from typing import Any, Protocol


class JsonResponse(Protocol):
    """What the helpers need of a response (an httpx `Response` fits)."""

    def json(self) -> Any: ...


def errors(response: JsonResponse) -> list[dict[str, str]]:
    """The response's error entries; fails unless the body is exactly `{"errors": [...]}`."""
    body: dict[str, list[dict[str, str]]] = response.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def fields(response: JsonResponse) -> list[str]:
    """The sorted `field`s of the response's errors ("" for an entry without one)."""
    return sorted(entry.get("field", "") for entry in errors(response))
