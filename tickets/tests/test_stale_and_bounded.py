"""tickets refuses an order priced before the seller's last edit, whatever the delivery
order or count; and a ticket remembers only its last CANCELLED_ORDERS_KEPT cancels."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient

from ticketing_common.events import OrderCreatedEvent
from ticketing_common.events.payloads import OrderTicketRef
from ticketing_testing import random_id
from ticketing_testing.api import TICKETS, create_ticket
from ticketing_testing.factories import order_cancelled, order_created
from ticketing_testing.http import signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe
from tickets.app import create_app
from tickets.config import Settings

KEPT = 3


def priced_at(
    ticket: dict[str, Any], version: int, order_id: str | None = None
) -> OrderCreatedEvent:
    """`order:created` for `ticket`, priced at its `version`."""
    event = order_created(order_id=order_id, ticket_id=ticket["id"], price=ticket["price"])
    ref = OrderTicketRef(id=ticket["id"], price=event.ticket.price, version=version)
    return event.model_copy(update={"ticket": ref})


async def shown(client: AsyncClient, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"{TICKETS}/{ticket_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def put(client: AsyncClient, ticket: dict[str, Any], owner: str, **body: Any) -> None:
    response = await client.put(
        f"{TICKETS}/{ticket['id']}",
        json={"title": ticket["title"], "price": ticket["price"], **body},
        headers=signed_in(owner),
    )
    assert response.status_code == 200, response.text


class TestStaleOrder:
    async def test_order_priced_before_the_edit_is_refused_every_time(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        ticket = await create_ticket(client, owner, price=20)
        await put(client, ticket, owner, price=35)
        stale = priced_at(ticket, 0)
        await probe.publish_and_wait(stale)
        await probe.publish_and_wait(stale, msg_id=random_id())  # a redelivery
        assert "orderId" not in await shown(client, ticket["id"])
        assert (await shown(client, ticket["id"]))["version"] == 1
        fresh = priced_at({**ticket, "price": 35}, 1)
        await probe.publish_and_wait(fresh)
        assert (await shown(client, ticket["id"]))["orderId"] == fresh.id

    async def test_reservations_and_releases_do_not_make_an_order_stale(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket = await create_ticket(client, random_id(), price=20)
        first = priced_at(ticket, 0)
        await probe.publish_and_wait(first)
        await probe.publish_and_wait(order_cancelled(first.id, ticket_id=ticket["id"]))
        # Priced at v0 by a replica that has not seen the reservation (v1) or release (v2).
        second = priced_at(ticket, 0)
        await probe.publish_and_wait(second)
        assert await shown(client, ticket["id"]) == {**ticket, "version": 3, "orderId": second.id}

    async def test_edit_to_the_same_title_and_price_does_not_make_an_order_stale(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        ticket = await create_ticket(client, owner, price=20)
        await put(client, ticket, owner)  # a new version, nothing changed
        order = priced_at(ticket, 0)
        await probe.publish_and_wait(order)
        assert (await shown(client, ticket["id"]))["orderId"] == order.id


@pytest.fixture
async def keeping_few(settings: Settings) -> AsyncIterator[AsyncClient]:
    bounded = service_settings(Settings, settings.NATS_URL, CANCELLED_ORDERS_KEPT=KEPT)
    async with running_client(create_app(bounded)) as http:
        yield http


class TestCancelledOrdersKept:
    async def test_a_ticket_remembers_only_its_newest_cancels(
        self, keeping_few: AsyncClient, probe: Probe
    ) -> None:
        client = keeping_few
        ticket = await create_ticket(client, random_id())
        cancelled = [random_id() for _ in range(KEPT + 2)]
        for order_id in cancelled:
            await probe.publish_and_wait(order_cancelled(order_id, ticket_id=ticket["id"]))
        # Redelivered cancels of remembered orders add nothing (no duplicate crowds out
        # an older one).
        for _ in range(KEPT):
            await probe.publish_and_wait(
                order_cancelled(cancelled[-1], ticket_id=ticket["id"]), msg_id=random_id()
            )
        # The newest KEPT are still ignored when their order:created comes late...
        for order_id in cancelled[-KEPT:]:
            await probe.publish_and_wait(priced_at(ticket, 0, order_id))
            assert "orderId" not in await shown(client, ticket["id"])
        # ...the oldest fell off the end of the list.
        await probe.publish_and_wait(priced_at(ticket, 0, cancelled[0]))
        assert (await shown(client, ticket["id"]))["orderId"] == cancelled[0]

    async def test_releasing_a_held_ticket_counts_towards_the_bound(
        self, keeping_few: AsyncClient, probe: Probe
    ) -> None:
        client = keeping_few
        ticket = await create_ticket(client, random_id())
        held = priced_at(ticket, 0)
        await probe.publish_and_wait(held)
        await probe.publish_and_wait(order_cancelled(held.id, ticket_id=ticket["id"]))
        await probe.publish_and_wait(held, msg_id=random_id())  # its late redelivery
        assert "orderId" not in await shown(client, ticket["id"])
        for _ in range(KEPT):
            await probe.publish_and_wait(order_cancelled(random_id(), ticket_id=ticket["id"]))
        await probe.publish_and_wait(held, msg_id=random_id())
        assert (await shown(client, ticket["id"]))["orderId"] == held.id
