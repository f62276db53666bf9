"""The client's server side calls the API through the gateway, as the browser's proxy.

Every call forwards the browser's `Cookie` (so the API sees the same session) and sends
the configured `API_HOST` as `Host` (the ingress routes by host; the original forwarded the
browser's, whatever it said). Answers other than 2xx become an
`ApiError` carrying the API's status and messages, which the page then shows.
"""

from __future__ import annotations

import logging
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from fastapi import Depends, Request
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from client.models import ApiModel, CurrentUserBody, ListPage, Order, Ticket, User

logger = logging.getLogger("client.api")

M = TypeVar("M", bound=BaseModel)
L = TypeVar("L", bound=ApiModel)

DEFAULT_MESSAGES = {
    401: "Not authorized",
    404: "Not Found",
    405: "Method not allowed",
    502: "The ticketing service is unavailable",
    503: "The ticketing service is unavailable",
    504: "The ticketing service is unavailable",
}
UNAVAILABLE = 502


class ApiError(Exception):
    """An API call that did not succeed: the status the page renders with, and messages."""

    def __init__(self, status_code: int, messages: list[str]) -> None:
        super().__init__(f"{status_code}: {'; '.join(messages)}")
        self.status_code = status_code
        self.messages = messages


def new_http_client(
    base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one connection pool of the process, shared by every browser request.

    Its cookie jar accepts nothing: a `Set-Cookie` answered to one browser must never
    ride along on another browser's later call.
    """
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        cookies=jar,
        follow_redirects=False,
        event_hooks={"request": [_continue_trace]},
    )


async def _continue_trace(request: httpx.Request) -> None:
    """An API call carries the page request's trace context (`traceparent`), so the
    browser's request and what the services do for it are one trace."""
    propagate.inject(request.headers)


def error_messages(response: httpx.Response) -> list[str]:
    """The API's `errors[].message`, or a plain message for its status."""
    try:
        body: Any = response.json()
        messages = [
            str(entry["message"])
            for entry in body["errors"]
            if isinstance(entry, dict) and entry.get("message")
        ]
    except (ValueError, TypeError, KeyError):
        messages = []
    if messages:
        return messages
    return [DEFAULT_MESSAGES.get(response.status_code, "Something went wrong")]


def path_segment(value: str) -> str:
    """An id from a page URL as one path segment of an API URL (`..` cannot climb)."""
    if value in {".", ".."}:
        raise ApiError(404, [DEFAULT_MESSAGES[404]])
    return quote(value, safe="")


class Api:
    """The API as seen by one browser request."""

    def __init__(self, http: httpx.AsyncClient, cookie: str | None, host: str | None) -> None:
        self._http = http
        self._headers = {"Accept": "application/json"}
        if cookie:
            self._headers["Cookie"] = cookie
        if host:
            self._headers["Host"] = host

    async def send(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """Call the API; a 2xx answer, else `ApiError` with the API's status and messages."""
        try:
            response = await self._http.request(method, path, params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            logger.warning("API call %s %s failed: %r", method, path, exc)
            raise ApiError(UNAVAILABLE, [DEFAULT_MESSAGES[UNAVAILABLE]]) from exc
        if response.is_success:
            return response
        if response.is_redirect or response.status_code < 400:
            logger.warning("API call %s %s answered %s", method, path, response.status_code)
            raise ApiError(UNAVAILABLE, ["Unexpected answer from the ticketing service"])
        raise ApiError(response.status_code, error_messages(response))

    async def get(self, path: str, model: type[M]) -> M:
        return self._parse((await self.send("GET", path)), model, path)

    async def get_page(self, path: str, model: type[L], cursor: str | None) -> ListPage[L]:
        """The page of a paged list at `cursor` (the first page when None), and where the
        next one starts: the `cursor` of its `Link: <...>; rel="next"`, absent on the last."""
        response = await self.send("GET", path, None if cursor is None else {"cursor": cursor})
        items = self._parse_list(response, model, path)
        link = response.links.get("next", {}).get("url")
        next_cursor = None
        if link:
            found = parse_qs(urlsplit(link).query).get("cursor")
            next_cursor = found[0] if found else None
        return ListPage(items, next_cursor)

    def _parse_list(self, response: httpx.Response, model: type[M], path: str) -> list[M]:
        try:
            body: Any = response.json()
            if not isinstance(body, list):
                raise ValueError("not a list")
            return [model.model_validate(item) for item in body]
        except (ValueError, ValidationError) as exc:
            raise self._unexpected(path, exc) from exc

    def _parse(self, response: httpx.Response, model: type[M], path: str) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unexpected(path, exc) from exc

    @staticmethod
    def _unexpected(path: str, exc: Exception) -> ApiError:
        logger.warning("API answer of %s is not what the client expects: %s", path, exc)
        return ApiError(UNAVAILABLE, ["Unexpected answer from the ticketing service"])

    async def current_user(self) -> User | None:
        return (await self.get("/api/users/currentuser", CurrentUserBody)).current_user

    async def list_tickets(self, cursor: str | None = None) -> ListPage[Ticket]:
        return await self.get_page("/api/tickets", Ticket, cursor)

    async def show_ticket(self, ticket_id: str) -> Ticket:
        return await self.get(f"/api/tickets/{path_segment(ticket_id)}", Ticket)

    async def list_orders(self, cursor: str | None = None) -> ListPage[Order]:
        return await self.get_page("/api/orders", Order, cursor)

    async def show_order(self, order_id: str) -> Order:
        return await self.get(f"/api/orders/{path_segment(order_id)}", Order)


def get_api(request: Request) -> Api:
    http: httpx.AsyncClient = request.state.http
    host: str = request.app.state.settings.API_HOST
    return Api(http, request.headers.get("cookie"), host)


ApiDep = Annotated[Api, Depends(get_api)]
