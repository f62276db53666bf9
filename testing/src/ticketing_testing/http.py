"""Requests as a signed-in user, and readers of the single error shape
`{"errors": [{"message", "field"?}]}` in responses."""

from __future__ import annotations

from typing import Any, Protocol

from ticketing_testing.session import cookie_for


def signed_in(user_id: str | None = None) -> dict[str, str]:
    """Request headers carrying the session cookie of `user_id` (a random user if None);
    a header, as httpx deprecates per-request `cookies=`."""
    return {"cookie": "; ".join(f"{name}={value}" for name, value in cookie_for(user_id).items())}


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
