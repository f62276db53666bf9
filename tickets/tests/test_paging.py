"""`GET /api/tickets` a page at a time (docs/SPEC.md §3): `limit`, an opaque `cursor`, and
the next page in the `Link` header, through HTTP."""

import re
from typing import Any

import pytest
from httpx import AsyncClient, Response

from ticketing_common.paging import CURSOR_MESSAGE, LIMIT_MESSAGE
from ticketing_testing import random_id
from ticketing_testing.api import TICKETS, create_ticket
from ticketing_testing.http import errors
from ticketing_testing.services import running_service
from ticketing_testing.stream import Probe, reserve
from tickets.app import create_app
from tickets.config import Settings
from tickets.repository import Tickets

NEXT_LINK = re.compile(r'^</api/tickets\?limit=(\d+)&cursor=([A-Za-z0-9_-]+)>; rel="next"$')
BAD_LIMITS = ["0", "201", "x", "-1", "", "1.5", " 5", "5 ", "+5", "1e2", "0x10", "\u0665", "1000"]
BAD_CURSORS = ["", "x", "!" * 16, "a" * 15, "a" * 17, "a" * 24, "YWJj+GRlZmdoaWpr", "=" * 16]


async def sell(client: AsyncClient, count: int) -> list[dict[str, Any]]:
    """`count` new tickets, oldest first."""
    return [await create_ticket(client, random_id(), title=f"t{n}") for n in range(count)]


def next_url(response: Response) -> str | None:
    """The `Link` header's next page, checked to be our one form of it; None if absent."""
    link = response.headers.get("link")
    if link is None:
        return None
    assert NEXT_LINK.match(link), link
    url: str = response.links["next"]["url"]
    return url


async def walk(client: AsyncClient, first: str) -> list[list[dict[str, Any]]]:
    """Every page from `first` on, following `Link` until it is absent."""
    pages: list[list[dict[str, Any]]] = []
    url: str | None = first
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = next_url(response)
    return pages


class TestPageSize:
    async def test_default_page_is_the_oldest_50_and_links_the_rest(
        self, client: AsyncClient
    ) -> None:
        created = await sell(client, 51)
        response = await client.get(TICKETS)
        assert response.status_code == 200
        assert response.json() == created[:50]
        link = NEXT_LINK.match(response.headers["link"])
        assert link is not None and link.group(1) == "50"
        rest = await client.get(response.links["next"]["url"])
        assert rest.json() == created[50:]
        assert "link" not in rest.headers

    async def test_limit_200_is_allowed_and_caps_the_page(self, client: AsyncClient) -> None:
        created = await sell(client, 201)
        response = await client.get(TICKETS, params={"limit": "200"})
        assert response.status_code == 200
        assert response.json() == created[:200]
        assert await walk(client, TICKETS + "?limit=200") == [created[:200], created[200:]]

    async def test_limit_1_pages_one_ticket_at_a_time(self, client: AsyncClient) -> None:
        created = await sell(client, 3)
        assert await walk(client, TICKETS + "?limit=1") == [[ticket] for ticket in created]

    async def test_no_tickets_is_an_empty_list_without_link(self, client: AsyncClient) -> None:
        response = await client.get(TICKETS, params={"limit": "10"})
        assert response.status_code == 200
        assert response.json() == []
        assert "link" not in response.headers


class TestWalkingPages:
    async def test_every_ticket_once_in_order_and_no_link_on_the_last_page(
        self, client: AsyncClient
    ) -> None:
        created = await sell(client, 7)
        pages = await walk(client, TICKETS + "?limit=3")
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [ticket for page in pages for ticket in page] == created

    async def test_a_full_last_page_has_no_link(self, client: AsyncClient) -> None:
        created = await sell(client, 6)
        pages = await walk(client, TICKETS + "?limit=3")
        assert pages == [created[:3], created[3:]]

    async def test_reserved_tickets_are_left_out_and_pages_stay_full(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await sell(client, 10)
        for index in (0, 3, 4, 8):
            await reserve(probe, created[index]["id"])
        free = [created[i] for i in (1, 2, 5, 6, 7, 9)]
        pages = await walk(client, TICKETS + "?limit=2")
        assert pages == [free[0:2], free[2:4], free[4:6]]

    async def test_tickets_added_and_reserved_while_paging_skip_and_repeat_nothing(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await sell(client, 6)
        first = await client.get(TICKETS, params={"limit": "2"})
        assert first.json() == created[:2]
        # Meanwhile: a ticket already shown and one not yet shown are reserved (with an
        # offset, the first would shift the rest back by one and skip a ticket), and two
        # new tickets go on sale.
        await reserve(probe, created[0]["id"])
        await reserve(probe, created[4]["id"])
        added = await sell(client, 2)
        url = next_url(first)
        assert url is not None
        rest = [ticket for page in await walk(client, url) for ticket in page]
        assert rest == [created[2], created[3], created[5], *added]

    async def test_the_cursor_outlives_the_ticket_it_ends_at(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await sell(client, 4)
        first = await client.get(TICKETS, params={"limit": "2"})
        await reserve(probe, created[1]["id"])  # the last ticket of the first page
        url = next_url(first)
        assert url is not None
        assert await walk(client, url) == [created[2:4]]


class TestBadInputs:
    @pytest.mark.parametrize("limit", BAD_LIMITS)
    async def test_bad_limit_is_400_with_field_limit(self, client: AsyncClient, limit: str) -> None:
        await sell(client, 1)
        response = await client.get(TICKETS, params={"limit": limit})
        assert response.status_code == 400
        assert errors(response) == [{"message": LIMIT_MESSAGE, "field": "limit"}]

    @pytest.mark.parametrize("cursor", BAD_CURSORS)
    async def test_malformed_cursor_is_400_with_field_cursor(
        self, client: AsyncClient, cursor: str
    ) -> None:
        response = await client.get(TICKETS, params={"cursor": cursor})
        assert response.status_code == 400
        assert errors(response) == [{"message": CURSOR_MESSAGE, "field": "cursor"}]

    async def test_an_id_is_not_a_cursor(self, client: AsyncClient) -> None:
        (ticket,) = await sell(client, 1)
        response = await client.get(TICKETS, params={"cursor": ticket["id"]})
        assert response.status_code == 400
        assert errors(response) == [{"message": CURSOR_MESSAGE, "field": "cursor"}]

    async def test_bad_limit_and_cursor_are_one_entry_each(self, client: AsyncClient) -> None:
        response = await client.get(TICKETS, params={"limit": "0", "cursor": "x"})
        assert response.status_code == 400
        assert errors(response) == [
            {"message": LIMIT_MESSAGE, "field": "limit"},
            {"message": CURSOR_MESSAGE, "field": "cursor"},
        ]


class TestListIndex:
    async def test_unreserved_in_id_order_has_an_index(self, settings: Settings) -> None:
        # The page query is `orderId: null` sorted and ranged by `_id`: an index on those
        # two keys, in that order, answers it without a scan or an in-memory sort.
        async with running_service(create_app(settings)) as running:
            tickets = running.get("tickets", Tickets)
            indexes = await tickets.collection.index_information()
        assert [("orderId", 1), ("_id", 1)] in [index["key"] for index in indexes.values()]
