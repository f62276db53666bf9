# mypy: disable-error-code="no-untyped-def"
"""The tickets index and My Orders page through the API's pages (docs/SPEC.md §3, §6):
the first page, and a Next link, carrying the API's cursor, while the API names a next page.

Against the real tickets and orders services, not conftest's fake: they run in the test
behind a small gateway (the route table's prefixes), so the pages read the services' own
`Link` headers. `currentuser` answers from the session cookie alone, as auth does for a
session it has not revoked (auth's own tests cover the rest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from orders.app import create_app as create_orders
from orders.config import Settings as OrdersSettings
from ticketing_common.auth import CurrentUser, SessionCodec, install_sessions
from ticketing_common.paging import CURSOR_MESSAGE, DEFAULT_LIMIT
from ticketing_testing import TEST_JWT_KEY, cookie_for, random_id
from ticketing_testing.api import create_ticket, place_order
from ticketing_testing.factories import ticket_created
from ticketing_testing.services import running_service, service_settings
from ticketing_testing.stream import Probe, probe_on
from tickets.app import create_app as create_tickets
from tickets.config import Settings as TicketsSettings


class Gateway(httpx.AsyncBaseTransport):
    """Passes each API call to the service whose path prefix it starts with."""

    def __init__(self, routes: dict[str, httpx.AsyncClient]) -> None:
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for prefix, service in self.routes.items():
            if request.url.path.startswith(prefix):
                answer = await service.send(request)
                return httpx.Response(
                    answer.status_code, headers=answer.headers, content=answer.content
                )
        return httpx.Response(404, json={"errors": [{"message": "Not Found"}]})


def current_user_app() -> FastAPI:
    """`GET /api/users/currentuser` read from the session cookie."""
    app = FastAPI()
    install_sessions(app, SessionCodec(jwt_key=TEST_JWT_KEY, cookie_secure=False))

    @app.get("/api/users/currentuser")
    async def currentuser(user: CurrentUser) -> dict[str, object]:
        shown = None if user is None else user.model_dump(include={"id", "email", "iat", "exp"})
        return {"currentUser": shown}

    return app


@dataclass
class Services:
    users: httpx.AsyncClient
    tickets: httpx.AsyncClient
    orders: httpx.AsyncClient
    orders_probe: Probe

    async def order_new_ticket(self, buyer_id: str, title: str) -> None:
        """A ticket orders knows (its `ticket:created` applied), ordered by `buyer_id`."""
        event = ticket_created(title=title)
        await self.orders_probe.publish_and_wait(event)
        await place_order(self.orders, event.id, buyer_id)


@pytest.fixture
async def services(jetstream_clean: str) -> AsyncIterator[Services]:
    orders_settings = service_settings(
        OrdersSettings, jetstream_clean, MAX_OPEN_ORDERS_PER_USER=DEFAULT_LIMIT + 1
    )
    async with AsyncExitStack() as stack:
        users = await stack.enter_async_context(running_service(current_user_app()))
        tickets = await stack.enter_async_context(
            running_service(create_tickets(service_settings(TicketsSettings, jetstream_clean)))
        )
        orders = await stack.enter_async_context(running_service(create_orders(orders_settings)))
        probe = await stack.enter_async_context(probe_on(jetstream_clean, "orders"))
        yield Services(users.http, tickets.http, orders.http, probe)


@pytest.fixture
def api_transport(services: Services) -> httpx.AsyncBaseTransport:
    # Overrides conftest's fake gateway.
    return Gateway(
        {
            "/api/users": services.users,
            "/api/tickets": services.tickets,
            "/api/orders": services.orders,
        }
    )


def view_links(page) -> list[str]:
    return [href for text, href in page.links if text == "View"]


def next_link(page) -> str | None:
    found = [href for text, href in page.links if text == "Next"]
    assert len(found) <= 1, page.links
    return found[0] if found else None


class TestTicketsIndexPages:
    async def test_index_shows_the_first_page_and_next_leads_to_the_rest(
        self, browser, services: Services
    ) -> None:
        seller = random_id()
        created = [
            await create_ticket(services.tickets, seller, title=f"show {n}")
            for n in range(DEFAULT_LIMIT + 1)
        ]

        first = await browser.get("/")

        assert first.status == 200
        assert view_links(first) == [f"/tickets/{t['id']}" for t in created[:DEFAULT_LIMIT]]
        assert "First page" not in [text for text, _ in first.links]
        following = next_link(first)
        assert following is not None and following.startswith("/?cursor=")

        second = await browser.get(following)

        assert second.status == 200
        assert view_links(second) == [f"/tickets/{created[-1]['id']}"]
        assert f"show {DEFAULT_LIMIT}" in second.text
        assert next_link(second) is None
        assert ("First page", "/") in second.links

    async def test_one_page_of_tickets_has_no_next_link(self, browser, services: Services):
        await create_ticket(services.tickets, random_id())

        page = await browser.get("/")

        assert len(view_links(page)) == 1
        assert next_link(page) is None

    async def test_a_bad_cursor_is_the_apis_400_on_an_error_page(self, browser, services):
        page = await browser.get("/?cursor=not-a-cursor")

        assert page.status == 400
        assert CURSOR_MESSAGE in page.text


class TestMyOrdersPages:
    async def test_my_orders_shows_the_first_page_and_next_leads_to_the_rest(
        self, browser, services: Services
    ) -> None:
        buyer = random_id()
        cookies = cookie_for(buyer, "buyer@test.com")
        await services.order_new_ticket(random_id(), "someone else's")
        for n in range(DEFAULT_LIMIT + 1):
            await services.order_new_ticket(buyer, f"show {n}")

        first = await browser.get("/orders", cookies=cookies)

        assert first.status == 200
        assert "My Orders" in first.nav
        assert "someone else's" not in first.text
        assert len(view_links(first)) == DEFAULT_LIMIT
        assert "show 0 " in first.text and f"show {DEFAULT_LIMIT} " not in first.text
        following = next_link(first)
        assert following is not None and following.startswith("/orders?cursor=")

        second = await browser.get(following, cookies=cookies)

        assert second.status == 200
        assert len(view_links(second)) == 1
        assert f"show {DEFAULT_LIMIT} " in second.text
        assert next_link(second) is None
        assert ("First page", "/orders") in second.links
