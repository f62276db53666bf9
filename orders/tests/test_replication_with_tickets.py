"""Tickets and orders together on one real JetStream, both services' listeners running."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient, Response

from orders.app import create_app as create_orders_app
from orders.config import SERVICE
from orders.config import Settings as OrdersSettings
from ticketing_common.events import STREAM_NAME, Subjects
from ticketing_testing import random_id
from ticketing_testing.api import ORDERS, place_order
from ticketing_testing.database import SharedDatabase, connect_yielding
from ticketing_testing.events import eventually
from ticketing_testing.http import signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe, probe_on
from tickets.app import create_app as create_tickets_app
from tickets.config import Settings as TicketsSettings

TICKETS = "/api/tickets"


@dataclass
class Services:
    tickets: AsyncClient
    orders: AsyncClient
    probe: Probe


@asynccontextmanager
async def running_services(url: str, orders_replicas: int = 1) -> AsyncIterator[Services]:
    """tickets and `orders_replicas` orders processes (sharing one database and the
    durable consumers) on the stream at `url`. Every database gives the event loop away
    at each call, as a networked driver does, so concurrent requests and handlers
    interleave between their reads and writes."""
    shared = SharedDatabase()
    async with AsyncExitStack() as stack:
        tickets_app = create_tickets_app(
            service_settings(TicketsSettings, url), connect=connect_yielding
        )
        tickets = await stack.enter_async_context(running_client(tickets_app))
        orders = [
            await stack.enter_async_context(
                running_client(
                    create_orders_app(service_settings(OrdersSettings, url), connect=shared.connect)
                )
            )
            for _ in range(orders_replicas)
        ]
        probe = await stack.enter_async_context(probe_on(url, SERVICE))
        yield Services(tickets, orders[0], probe)


@pytest.fixture
async def services(jetstream_clean: str) -> AsyncIterator[Services]:
    async with running_services(jetstream_clean) as running:
        yield running


def json_of(response: Response) -> dict[str, Any]:
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed_ticket_ids(services: Services) -> list[str]:
    response = await services.tickets.get(TICKETS)
    assert response.status_code == 200
    return [ticket["id"] for ticket in response.json()]


async def ticket_in_tickets(services: Services, ticket_id: str) -> dict[str, Any]:
    return json_of(await services.tickets.get(f"{TICKETS}/{ticket_id}"))


async def orders_caught_up(probe: Probe) -> bool:
    """Orders' ticket consumers have acked everything the stream holds for them."""
    for subject in (Subjects.TICKET_CREATED, Subjects.TICKET_UPDATED):
        info = await probe.js.consumer_info(STREAM_NAME, probe.durable(subject))
        if info.num_pending or info.num_ack_pending:
            return False
    return True


class TestReservationAcrossServices:
    async def test_ticket_order_cancel_and_edit_flow_between_the_services(
        self, services: Services
    ) -> None:
        seller, buyer = random_id(), random_id()
        ticket = json_of(
            await services.tickets.post(
                TICKETS, json={"title": "concert", "price": "19.99"}, headers=signed_in(seller)
            )
        )
        ticket_id = ticket["id"]

        # Created in tickets, then replicated into orders.
        await eventually(lambda: orders_caught_up(services.probe), what="ticket:created replicated")
        order = await place_order(services.orders, ticket_id, buyer)
        assert order["ticket"] == {
            "id": ticket_id,
            "title": "concert",
            "price": 19.99,
            "version": 0,
        }

        # The order reserves the ticket in tickets, whose change comes back to orders.
        async def reserved() -> bool:
            current = await ticket_in_tickets(services, ticket_id)
            return bool(current.get("orderId") == order["id"])

        await eventually(reserved, what="ticket reserved in tickets")
        assert (await ticket_in_tickets(services, ticket_id))["version"] == 1

        async def replica_at(version: int) -> bool:
            # The order shows its ticket as ordered, so the replica is read off the
            # stream: tickets is at `version` and orders has handled all it published.
            current = await ticket_in_tickets(services, ticket_id)
            return bool(current["version"] == version) and await orders_caught_up(services.probe)

        await eventually(lambda: replica_at(1), what="replica at v1 in orders")
        assert ticket_id not in await listed_ticket_ids(services)
        edit = await services.tickets.put(
            f"{TICKETS}/{ticket_id}", json={"title": "x", "price": 1}, headers=signed_in(seller)
        )
        assert edit.status_code == 400
        assert edit.json() == {"errors": [{"message": "Cannot edit a reserved ticket"}]}

        # Cancelling the order releases the ticket; the replica follows.
        cancel = await services.orders.delete(f"{ORDERS}/{order['id']}", headers=signed_in(buyer))
        assert cancel.status_code == 204

        async def released() -> bool:
            current = await ticket_in_tickets(services, ticket_id)
            return "orderId" not in current and current["version"] == 2

        await eventually(released, what="ticket released in tickets")
        await eventually(lambda: replica_at(2), what="replica at v2 in orders")
        assert ticket_id in await listed_ticket_ids(services)

        # The seller edits the free ticket; the next order sees the new title and price.
        edited = json_of(
            await services.tickets.put(
                f"{TICKETS}/{ticket_id}",
                json={"title": "concert, front row", "price": 25.5},
                headers=signed_in(seller),
            )
        )
        assert edited["version"] == 3
        await eventually(lambda: orders_caught_up(services.probe), what="edit replicated")
        again = await place_order(services.orders, ticket_id, random_id())
        assert again["ticket"] == {
            "id": ticket_id,
            "title": "concert, front row",
            "price": 25.5,
            "version": 3,
        }


async def put_until_accepted(
    client: AsyncClient, ticket_id: str, owner: str, title: str, price: str
) -> int:
    """PUT, retrying a lost optimistic-concurrency race (409) as a 409 invites; the
    number of 409s."""
    conflicts = 0
    while True:
        response = await client.put(
            f"{TICKETS}/{ticket_id}",
            json={"title": title, "price": price},
            headers=signed_in(owner),
        )
        if response.status_code == 200:
            return conflicts
        assert response.status_code == 409, response.text
        conflicts += 1


class TestConcurrentUpdatesConverge:
    @pytest.mark.parametrize("orders_replicas", [1, 2])
    async def test_50_tickets_updated_3_times_in_parallel_all_replicas_end_final(
        self, jetstream_clean: str, orders_replicas: int
    ) -> None:
        # With two orders processes the queue group splits the events between them, so a
        # ticket's v2 can be handled before its v1: the version rule must sort it out.
        async with running_services(jetstream_clean, orders_replicas) as services:
            await self._update_and_converge(services, orders_replicas)

    async def _update_and_converge(self, services: Services, orders_replicas: int) -> None:
        owner = random_id()
        created = await asyncio.gather(
            *(
                services.tickets.post(
                    TICKETS, json={"title": f"t{n}", "price": "10"}, headers=signed_in(owner)
                )
                for n in range(50)
            )
        )
        ticket_ids = [json_of(response)["id"] for response in created]
        await eventually(lambda: orders_caught_up(services.probe), what="50 tickets replicated")

        # All 150 updates at once: three per ticket, racing each other.
        started = time.perf_counter()
        conflicts = await asyncio.gather(
            *(
                put_until_accepted(
                    services.tickets, ticket_id, owner, f"t{n} v{round_}", f"{n}.{round_}5"
                )
                for n, ticket_id in enumerate(ticket_ids)
                for round_ in (1, 2, 3)
            )
        )
        updated = time.perf_counter()
        await eventually(
            lambda: orders_caught_up(services.probe), timeout=60, what="150 updates replicated"
        )
        converged = time.perf_counter()

        finals = {
            ticket_id: await ticket_in_tickets(services, ticket_id) for ticket_id in ticket_ids
        }
        assert {final["version"] for final in finals.values()} == {3}
        # Each replica, as orders shows it in a new order: the tickets service's final
        # title, price and version.
        for ticket_id, final in finals.items():
            order = await place_order(services.orders, ticket_id, random_id())
            assert order["ticket"] == {
                "id": ticket_id,
                "title": final["title"],
                "price": final["price"],
                "version": 3,
            }
        info = await services.probe.js.consumer_info(
            STREAM_NAME, services.probe.durable(Subjects.TICKET_UPDATED)
        )
        print(
            f"\n{orders_replicas} orders process(es): 150 updates of 50 tickets: "
            f"accepted in {updated - started:.2f}s "
            f"({sum(conflicts)} 409 retries); orders converged {converged - updated:.2f}s "
            f"after the last update ({converged - started:.2f}s in all); "
            f"{info.num_redelivered} ticket:updated redeliveries"
        )
