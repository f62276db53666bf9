"""An order keeps the price it was placed at; an order priced before the seller's edit is
refused by tickets and cancelled by orders (docs/SPEC.md §4), never charged at a price
the buyer did not see."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from orders.app import create_app as create_orders_app
from orders.config import Settings as OrdersSettings
from ticketing_common.events import STREAM_NAME, Subjects, durable_name
from ticketing_testing import random_id
from ticketing_testing.api import TICKETS, create_ticket, place_order, show_order
from ticketing_testing.database import connect_yielding
from ticketing_testing.events import eventually
from ticketing_testing.factories import ticket_created, ticket_updated
from ticketing_testing.http import signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe, probe_on
from tickets.app import create_app as create_tickets_app
from tickets.config import Settings as TicketsSettings

TICKET_CHANGED = (
    "The seller changed the ticket's price or title after it was ordered; please order it again"
)
# Where a test holds an event on its way: the consumer stops delivering until resumed.
TICKETS_ORDER_CREATED = durable_name("tickets", Subjects.ORDER_CREATED)
ORDERS_TICKET_UPDATED = durable_name("orders", Subjects.TICKET_UPDATED)


@dataclass
class Both:
    tickets: AsyncClient
    orders: AsyncClient
    tickets_probe: Probe
    orders_probe: Probe

    async def hold(self, consumer: str) -> None:
        await self._pause(consumer, timedelta(minutes=5))

    async def release(self, consumer: str) -> None:
        # A pause that runs out, not `resume_consumer`: nats-server 2.15 leaves a resumed
        # push consumer idle until its next message.
        await self._pause(consumer, timedelta(seconds=0.05))

    async def _pause(self, consumer: str, span: timedelta) -> None:
        until = (datetime.now(UTC) + span).isoformat().replace("+00:00", "Z")
        await self.orders_probe.js.pause_consumer(STREAM_NAME, consumer, until)

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        response = await self.tickets.get(f"{TICKETS}/{ticket_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def orders_caught_up(self) -> bool:
        for subject in (Subjects.TICKET_CREATED, Subjects.TICKET_UPDATED):
            info = await self.orders_probe.js.consumer_info(
                STREAM_NAME, self.orders_probe.durable(subject)
            )
            if info.num_pending or info.num_ack_pending:
                return False
        return True


@asynccontextmanager
async def both(url: str) -> AsyncIterator[Both]:
    async with AsyncExitStack() as stack:
        tickets = await stack.enter_async_context(
            running_client(
                create_tickets_app(service_settings(TicketsSettings, url), connect=connect_yielding)
            )
        )
        orders = await stack.enter_async_context(
            running_client(
                create_orders_app(service_settings(OrdersSettings, url), connect=connect_yielding)
            )
        )
        yield Both(
            tickets,
            orders,
            await stack.enter_async_context(probe_on(url, "tickets")),
            await stack.enter_async_context(probe_on(url, "orders")),
        )


async def order_cancels(probe: Probe, order_id: str) -> list[Any]:
    return [
        m.data for m in await probe.stored(Subjects.ORDER_CANCELLED) if m.data["id"] == order_id
    ]


async def edit(services: Both, ticket_id: str, seller: str, price: Any) -> dict[str, Any]:
    response = await services.tickets.put(
        f"{TICKETS}/{ticket_id}",
        json={"title": "concert", "price": price},
        headers=signed_in(seller),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestEditWhileOrderInFlight:
    async def test_tickets_refuses_the_stale_order_and_orders_cancels_it_with_the_reason(
        self, jetstream_clean: str
    ) -> None:
        async with both(jetstream_clean) as services:
            seller, buyer = random_id(), random_id()
            ticket = await create_ticket(services.tickets, seller, title="concert", price=20)
            await eventually(services.orders_caught_up, what="ticket replicated in orders")
            # order:created is on its way to tickets, and the edit on its way to orders.
            await services.hold(TICKETS_ORDER_CREATED)
            await services.hold(ORDERS_TICKET_UPDATED)
            order = await place_order(services.orders, ticket["id"], buyer)
            assert order["ticket"]["price"] == 20
            assert (await edit(services, ticket["id"], seller, 35))["version"] == 1

            # tickets sees the order priced at v0 after the edit at v1: not reserved.
            await services.release(TICKETS_ORDER_CREATED)
            [created] = await services.tickets_probe.stored(Subjects.ORDER_CREATED)
            await services.tickets_probe.wait_handled(Subjects.ORDER_CREATED, created.seq)
            current = await services.ticket(ticket["id"])
            assert (current["version"], current["price"], "orderId" in current) == (1, 35, False)

            # orders learns of the edit and cancels the order, saying why; the order still
            # shows the price it was placed at.
            await services.release(ORDERS_TICKET_UPDATED)

            async def cancelled() -> bool:
                shown = await show_order(services.orders, order["id"], buyer)
                return bool(shown["status"] == "cancelled")

            await eventually(cancelled, what="the stale order cancelled")
            shown = await show_order(services.orders, order["id"], buyer)
            assert shown["cancelReason"] == TICKET_CHANGED
            assert shown["ticket"] == {**order["ticket"], "price": 20, "version": 0}
            assert await order_cancels(services.orders_probe, order["id"]) == [
                {"id": order["id"], "version": 1, "ticket": {"id": ticket["id"]}}
            ]
            # Nothing reserved the ticket at any point; a new order gets the new price.
            updates = await services.tickets_probe.stored(Subjects.TICKET_UPDATED)
            assert [m.data.get("orderId") for m in updates] == [None]
            again = await place_order(services.orders, ticket["id"], buyer)
            assert (again["ticket"]["price"], again["ticket"]["version"]) == (35, 1)

            async def reserved() -> bool:
                return bool((await services.ticket(ticket["id"])).get("orderId") == again["id"])

            await eventually(reserved, what="the new order reserving the ticket")

    async def test_edit_reaching_orders_first_cancels_and_tickets_never_reserves(
        self, jetstream_clean: str
    ) -> None:
        async with both(jetstream_clean) as services:
            seller, buyer = random_id(), random_id()
            ticket = await create_ticket(services.tickets, seller, price="19.99")
            await eventually(services.orders_caught_up, what="ticket replicated in orders")
            await services.hold(TICKETS_ORDER_CREATED)
            order = await place_order(services.orders, ticket["id"], buyer)
            await edit(services, ticket["id"], seller, "24.99")

            async def cancelled() -> bool:
                shown = await show_order(services.orders, order["id"], buyer)
                return bool(shown["status"] == "cancelled")

            await eventually(cancelled, what="orders cancelling on the edit")
            await services.release(TICKETS_ORDER_CREATED)
            [created] = await services.tickets_probe.stored(Subjects.ORDER_CREATED)
            await services.tickets_probe.wait_handled(Subjects.ORDER_CREATED, created.seq)
            [cancel] = await services.tickets_probe.stored(Subjects.ORDER_CANCELLED)
            await services.tickets_probe.wait_handled(Subjects.ORDER_CANCELLED, cancel.seq)
            current = await services.ticket(ticket["id"])
            assert (current["version"], current["price"], "orderId" in current) == (1, 24.99, False)
            shown = await show_order(services.orders, order["id"], buyer)
            assert (shown["cancelReason"], shown["ticket"]["price"]) == (TICKET_CHANGED, 19.99)


class TestTicketUpdatedInOrders:
    """orders alone, with the probe publishing as tickets would."""

    async def test_reservation_update_keeps_the_order(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created(price="20")
        await probe.publish_and_wait(created)
        buyer = random_id()
        order = await place_order(client, created.id, buyer)
        # tickets reserving it for this order: a new version, same title and price.
        await probe.publish_and_wait(ticket_updated(created.id, 1, title=created.title, price="20"))
        assert (await show_order(client, order["id"], buyer))["status"] == "created"
        assert await order_cancels(probe, order["id"]) == []

    async def test_edit_cancels_the_open_order_once_even_when_redelivered(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created(price="20")
        await probe.publish_and_wait(created)
        buyer = random_id()
        order = await place_order(client, created.id, buyer)
        edited = ticket_updated(created.id, 1, title=created.title, price="30")
        await probe.publish_and_wait(edited)
        await probe.publish_and_wait(edited, msg_id=random_id())  # a redelivery
        shown = await show_order(client, order["id"], buyer)
        assert (shown["status"], shown["version"], shown["cancelReason"]) == (
            "cancelled",
            1,
            TICKET_CHANGED,
        )
        assert shown["ticket"]["price"] == 20
        assert len(await order_cancels(probe, order["id"])) == 1

    async def test_order_placed_after_the_edit_is_kept(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created(price="20")
        await probe.publish_and_wait(created)
        await probe.publish_and_wait(ticket_updated(created.id, 1, title="new", price="30"))
        buyer = random_id()
        order = await place_order(client, created.id, buyer)
        # A later event (tickets reserving it) looks at the order again and keeps it.
        await probe.publish_and_wait(ticket_updated(created.id, 2, title="new", price="30"))
        shown = await show_order(client, order["id"], buyer)
        assert (shown["status"], shown["ticket"]["price"], shown["ticket"]["version"]) == (
            "created",
            30,
            1,
        )
