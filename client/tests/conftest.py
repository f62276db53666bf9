"""A fake gateway standing in for the API, and a browser-like client of the pages.

The fake is a small FastAPI app reached through an httpx transport (the client's own
seam: `create_app(api_transport=...)`). It answers as docs/SPEC.md §3 says, knows users by the
value of their `session` cookie, and records every request it receives.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from client.app import create_app
from client.config import Settings
from ticketing_testing import random_id

STRIPE_JS_URL = "http://127.0.0.1:8420/js.stripe.com/v3/"
STRIPE_KEY = "pk_test_page_tests"
GATEWAY = "http://gateway.test"
SITE = "http://ticketing.dev"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Seen:
    method: str
    path: str
    headers: httpx.Headers


@dataclass
class FakeApi:
    """The gateway and the services behind it, as far as the pages use them."""

    users: dict[str, dict[str, str]] = field(default_factory=dict)  # session value -> user
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    # (method, path) -> a canned answer instead of the real one.
    canned: dict[tuple[str, str], Response] = field(default_factory=dict)

    def answer(
        self,
        method: str,
        path: str,
        status: int,
        body: str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.canned[(method, path)] = Response(
            body, status_code=status, media_type=content_type, headers=headers
        )

    def sign_in(self, email: str = "buyer@test.com") -> dict[str, str]:
        """A signed-in user; returns the browser cookies of their session."""
        user = {"id": random_id(), "email": email}
        session = f"session-of-{user['id']}"
        self.users[session] = user
        return {"session": session}

    def user_of(self, cookies: dict[str, str]) -> dict[str, str]:
        return self.users[cookies["session"]]

    def add_ticket(
        self, title: str = "Concert", price: float = 20, order_id: str | None = None
    ) -> dict[str, Any]:
        ticket: dict[str, Any] = {
            "id": random_id(),
            "title": title,
            "price": price,
            "userId": random_id(),
            "version": 0,
        }
        if order_id:
            ticket["orderId"] = order_id
        self.tickets[ticket["id"]] = ticket
        return ticket

    def add_order(
        self,
        user_id: str,
        *,
        title: str = "Concert",
        price: float = 20,
        status: str = "created",
        expires_in: timedelta = timedelta(minutes=15),
    ) -> dict[str, Any]:
        ticket = self.add_ticket(title, price)
        order: dict[str, Any] = {
            "id": random_id(),
            "userId": user_id,
            "status": status,
            "expiresAt": iso(datetime.now(UTC) + expires_in),
            "ticket": {k: ticket[k] for k in ("id", "title", "price", "version")},
            "version": 0,
        }
        self.orders[order["id"]] = order
        return order

    def seen_paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]

    def app(self) -> FastAPI:
        api = FastAPI()

        def error(status: int, message: str) -> JSONResponse:
            return JSONResponse({"errors": [{"message": message}]}, status_code=status)

        def current(request: Request) -> dict[str, str] | None:
            return self.users.get(request.cookies.get("session", ""))

        @api.middleware("http")
        async def record(request: Request, call_next: Any) -> Response:
            self.seen.append(Seen(request.method, request.url.path, httpx.Headers(request.headers)))
            answer = self.canned.get((request.method, request.url.path))
            if answer is not None:
                return answer
            response: Response = await call_next(request)
            return response

        @api.get("/api/users/currentuser")
        async def currentuser(request: Request) -> dict[str, Any]:
            user = current(request)
            if user is None:
                return {"currentUser": None}
            return {"currentUser": {**user, "iat": 1, "exp": 2}}

        @api.post("/api/users/signout")
        async def signout() -> Response:
            response = JSONResponse({})
            response.delete_cookie("session", path="/", httponly=True, samesite="lax")
            return response

        @api.get("/api/tickets")
        async def list_tickets() -> list[dict[str, Any]]:
            return [t for t in self.tickets.values() if "orderId" not in t]

        @api.get("/api/tickets/{ticket_id}")
        async def show_ticket(ticket_id: str) -> Response:
            ticket = self.tickets.get(ticket_id)
            return JSONResponse(ticket) if ticket else error(404, "Not Found")

        @api.get("/api/orders")
        async def list_orders(request: Request) -> Response:
            user = current(request)
            if user is None:
                return error(401, "Not authorized")
            return JSONResponse([o for o in self.orders.values() if o["userId"] == user["id"]])

        @api.get("/api/orders/{order_id}")
        async def show_order(request: Request, order_id: str) -> Response:
            user = current(request)
            if user is None:
                return error(401, "Not authorized")
            order = self.orders.get(order_id)
            if order is None:
                return error(404, "Not Found")
            if order["userId"] != user["id"]:
                return error(401, "Not authorized")
            return JSONResponse(order)

        return api


class _PageParser(HTMLParser):
    VOID = frozenset({"input", "meta", "link", "br", "img", "hr"})
    INVISIBLE = frozenset({"script", "style", "title", "head"})

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.buttons: list[str] = []
        self.labels: list[str] = []
        self.scripts: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        # Open elements: tag, attributes, text inside, hidden (itself or an ancestor).
        self._open: list[tuple[str, dict[str, str], list[str], bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag == "script" and "src" in attributes:
            self.scripts.append(attributes["src"])
        if tag in self.VOID:
            return
        hidden = (
            "hidden" in attributes
            or tag in self.INVISIBLE
            or bool(self._open and self._open[-1][3])
        )
        self._open.append((tag, attributes, [], hidden))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, attributes, parts, hidden = self._open.pop()
            content = " ".join(" ".join(parts).split())
            if self._open and not hidden:
                self._open[-1][2].append(content)
            if not hidden:
                if open_tag == "a":
                    self.links.append((content, attributes.get("href", "")))
                elif open_tag == "button":
                    self.buttons.append(content)
                elif open_tag == "label":
                    self.labels.append(content)
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][3]:
            return
        self.text.append(data)
        if self._open:
            self._open[-1][2].append(data)


@dataclass
class Page:
    """A rendered page as a reader sees it: visible text, links, buttons, labels."""

    response: httpx.Response
    text: str
    links: list[tuple[str, str]]
    buttons: list[str]
    labels: list[str]
    scripts: list[str]
    elements: list[tuple[str, dict[str, str]]]

    @classmethod
    def parse(cls, response: httpx.Response) -> Page:
        parser = _PageParser()
        parser.feed(response.text)
        parser.close()
        text = " ".join(" ".join(parser.text).split())
        return cls(
            response,
            text,
            parser.links,
            parser.buttons,
            parser.labels,
            parser.scripts,
            parser.elements,
        )

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def nav(self) -> list[str]:
        """The header's link and button texts (Sign Out is a button), brand first."""
        header = self.response.text.split("</header>", 1)[0]
        found = re.findall(r">([^<>]+)</(?:a|button)>", header)
        return [re.sub(r"\s+", " ", text).strip() for text in found]

    def forms(self) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == "form"]

    def inputs(self) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == "input"]


class Browser:
    """Asks the client for pages, as a browser at `http://ticketing.dev` would."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get(
        self,
        path: str,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        return Page.parse(await self.request("GET", path, cookies, headers))

    async def request(
        self,
        method: str,
        path: str,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        # Each call is a fresh browser: only the cookies given here are sent.
        self.http.cookies.clear()
        sent = dict(headers or {})
        if cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        return await self.http.request(method, path, headers=sent)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        API_BASE_URL=GATEWAY,
        STRIPE_PUBLISHABLE_KEY=STRIPE_KEY,
        STRIPE_JS_URL=STRIPE_JS_URL,
        API_TIMEOUT_SECONDS=5,
    )


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def api_transport(fake_api: FakeApi) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(fake_api.app())


@pytest.fixture
async def browser(
    settings: Settings, api_transport: httpx.AsyncBaseTransport
) -> AsyncIterator[Browser]:
    app = create_app(settings, api_transport=api_transport)
    async with (
        LifespanManager(app) as manager,
        # As a server would, answer the 500 page rather than raise into the test.
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app, raise_app_exceptions=False),
            base_url=SITE,
        ) as client,
    ):
        yield Browser(client)
