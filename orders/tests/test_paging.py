"""`GET /api/orders` a page at a time (docs/SPEC.md §3): only the caller's orders, `limit`,
an opaque `cursor`, and the next page in the `Link` header, through HTTP."""

import re
from typing import Any

import pytest
from httpx import AsyncClient, Response

from orders.app import create_app
from orders.config import Settings
from orders.repository import Orders
from ticketing_common.paging import CURSOR_MESSAGE, LIMIT_MESSAGE
from ticketing_testing import random_id
from ticketing_testing.api import ORDERS, place_order
from ticketing_testing.factories import ticket_created
from ticketing_testing.http import errors, signed_in
from ticketing_testing.services import running_service, service_settings
from ticketing_testing.stream import Probe

NEXT_LINK = re.compile(r'^</api/orders\?limit=(\d+)&cursor=([A-Za-z0-9_-]+)>; rel="next"$')


@pytest.fixture
def settings(jetstream_clean: str) -> Settings:
    """Room for more open orders per user than one page holds."""
    return service_settings(Settings, jetstream_clean, MAX_OPEN_ORDERS_PER_USER=100)


async def order_tickets(
    client: AsyncClient, probe: Probe, buyers: list[str]
) -> list[dict[str, Any]]:
    """One new ticket ordered by each of `buyers`, in turn; the orders, oldest first."""
    orders = []
    for buyer in buyers:
        ticket = ticket_created()
        await probe.publish_and_wait(ticket)
        orders.append(await place_order(client, ticket.id, buyer))
    return orders


def next_url(response: Response) -> str | None:
    """The `Link` header's next page, checked to be our one form of it; None if absent."""
    link = response.headers.get("link")
    if link is None:
        return None
    assert NEXT_LINK.match(link), link
    url: str = response.links["next"]["url"]
    return url


async def walk(client: AsyncClient, first: str, user_id: str) -> list[list[dict[str, Any]]]:
    """Every page from `first` on as `user_id`, following `Link` until it is absent."""
    pages: list[list[dict[str, Any]]] = []
    url: str | None = first
    while url is not None:
        response = await client.get(url, headers=signed_in(user_id))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = next_url(response)
    return pages


class TestPageSize:
    async def test_default_page_is_the_oldest_50_and_links_the_rest(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        created = await order_tickets(client, probe, [me] * 51)
        response = await client.get(ORDERS, headers=signed_in(me))
        assert response.status_code == 200
        assert response.json() == created[:50]
        link = NEXT_LINK.match(response.headers["link"])
        assert link is not None and link.group(1) == "50"
        rest = await client.get(response.links["next"]["url"], headers=signed_in(me))
        assert rest.json() == created[50:]
        assert "link" not in rest.headers

    async def test_limit_200_is_allowed(self, client: AsyncClient, probe: Probe) -> None:
        me = random_id()
        created = await order_tickets(client, probe, [me] * 3)
        response = await client.get(ORDERS, params={"limit": "200"}, headers=signed_in(me))
        assert response.status_code == 200
        assert response.json() == created
        assert "link" not in response.headers


class TestWalkingPages:
    async def test_only_the_callers_orders_once_each_in_order(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me, other = random_id(), random_id()
        placed = await order_tickets(client, probe, [me, other, other, me, me, other, me, me])
        mine = [order for order in placed if order["userId"] == me]
        pages = await walk(client, ORDERS + "?limit=2", me)
        # Pages count only the caller's orders: full until the last, which has no link.
        assert pages == [mine[0:2], mine[2:4], mine[4:5]]
        theirs = await walk(client, ORDERS + "?limit=2", other)
        assert theirs == [[placed[1], placed[2]], [placed[5]]]

    async def test_a_cursor_shows_nothing_of_another_user(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me, other = random_id(), random_id()
        placed = await order_tickets(client, probe, [me, other, me, other])
        first = await client.get(ORDERS, params={"limit": "1"}, headers=signed_in(me))
        url = next_url(first)
        assert url is not None
        # The cursor says where, never whose: the other user following it sees only
        # their own orders after that point.
        assert await walk(client, url, other) == [[placed[1]], [placed[3]]]

    async def test_orders_placed_and_cancelled_while_paging_skip_and_repeat_nothing(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        created = await order_tickets(client, probe, [me] * 5)
        first = await client.get(ORDERS, params={"limit": "2"}, headers=signed_in(me))
        assert first.json() == created[:2]
        await client.delete(f"{ORDERS}/{created[3]['id']}", headers=signed_in(me))
        added = await order_tickets(client, probe, [me])
        url = next_url(first)
        assert url is not None
        rest = [order for page in await walk(client, url, me) for order in page]
        assert [order["id"] for order in rest] == [order["id"] for order in [*created[2:], *added]]
        assert [order["status"] for order in rest] == ["created", "cancelled", "created", "created"]


class TestBadInputs:
    async def test_signed_out_is_401_whatever_the_query(self, client: AsyncClient) -> None:
        response = await client.get(ORDERS, params={"limit": "x", "cursor": "!"})
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    @pytest.mark.parametrize("limit", ["0", "201", "x", "-1", "", "2.0"])
    async def test_bad_limit_is_400_with_field_limit(self, client: AsyncClient, limit: str) -> None:
        response = await client.get(ORDERS, params={"limit": limit}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": LIMIT_MESSAGE, "field": "limit"}]

    @pytest.mark.parametrize("cursor", ["", "x", "a" * 24, "!" * 16, "a" * 17])
    async def test_malformed_cursor_is_400_with_field_cursor(
        self, client: AsyncClient, cursor: str
    ) -> None:
        response = await client.get(ORDERS, params={"cursor": cursor}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": CURSOR_MESSAGE, "field": "cursor"}]


class TestListIndex:
    async def test_one_users_orders_in_id_order_have_an_index(self, settings: Settings) -> None:
        # The page query is `userId` sorted and ranged by `_id`: an index on those two
        # keys, in that order, answers it without a scan or an in-memory sort.
        async with running_service(create_app(settings)) as running:
            orders = running.get("orders", Orders)
            indexes = await orders.collection.index_information()
        assert [("userId", 1), ("_id", 1)] in [index["key"] for index in indexes.values()]
