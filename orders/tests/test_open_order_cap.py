"""One user holds at most MAX_OPEN_ORDERS_PER_USER open orders (400 beyond, nothing
changed), enforced by the database even for concurrent requests."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from orders.app import create_app
from orders.config import Settings
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.api import ORDERS, place_order
from ticketing_testing.database import connect_yielding
from ticketing_testing.factories import payment_created, ticket_created
from ticketing_testing.http import errors, signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe

CAP = 2
TOO_MANY = f"You already have {CAP} open orders; pay for or cancel one first"


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[AsyncClient]:
    """Orders with a cap of CAP, on a database that yields like a networked one."""
    capped_settings = service_settings(Settings, settings.NATS_URL, MAX_OPEN_ORDERS_PER_USER=CAP)
    async with running_client(create_app(capped_settings, connect=connect_yielding)) as http:
        yield http


async def tickets(probe: Probe, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        event = ticket_created()
        await probe.publish_and_wait(event)
        ids.append(event.id)
    return ids


class TestOpenOrderCap:
    async def test_order_beyond_the_cap_is_400_and_changes_nothing(
        self, capped: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        first, second, third = await tickets(probe, 3)
        await place_order(capped, first, me)
        await place_order(capped, second, me)
        response = await capped.post(ORDERS, json={"ticketId": third}, headers=signed_in(me))
        assert response.status_code == 400
        assert errors(response) == [{"message": TOO_MANY}]
        assert len(await probe.stored(Subjects.ORDER_CREATED)) == CAP
        listed = (await capped.get(ORDERS, headers=signed_in(me))).json()
        assert [order["ticket"]["id"] for order in listed] == [first, second]
        # The cap is per user, and the ticket is still free for anyone else.
        await place_order(capped, third, random_id())

    async def test_cancelled_and_paid_orders_free_their_slots(
        self, capped: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        ids = await tickets(probe, 4)
        cancelled = await place_order(capped, ids[0], me)
        paid = await place_order(capped, ids[1], me)
        response = await capped.delete(f"{ORDERS}/{cancelled['id']}", headers=signed_in(me))
        assert response.status_code == 204
        await place_order(capped, ids[2], me)
        await probe.publish_and_wait(payment_created(paid["id"]))
        await place_order(capped, ids[3], me)

    async def test_concurrent_orders_of_one_user_stop_at_the_cap(
        self, capped: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        ids = await tickets(probe, 6)
        responses = await asyncio.gather(
            *(
                capped.post(ORDERS, json={"ticketId": ticket}, headers=signed_in(me))
                for ticket in ids
            )
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201] * CAP + [400] * (len(ids) - CAP)
        assert all(
            errors(response) == [{"message": TOO_MANY}]
            for response in responses
            if response.status_code == 400
        )
        listed = (await capped.get(ORDERS, headers=signed_in(me))).json()
        assert len(listed) == CAP
