"""Orders' expiry sweep: an order whose expiration job never comes is cancelled anyway.

No expiration worker runs in these tests, so nothing publishes `expiration:complete`: the
job is as lost as if Redis had dropped it.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from httpx import AsyncClient

from orders.app import create_app
from orders.config import SERVICE, Settings
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.api import place_order, show_order
from ticketing_testing.database import SharedDatabase
from ticketing_testing.events import eventually
from ticketing_testing.factories import payment_created, ticket_created
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe, probe_on

# Orders are due a second after they are placed, and swept soon after.
SWEEP = {"EXPIRATION_WINDOW_SECONDS": 1, "EXPIRATION_SWEEP_INTERVAL_SECONDS": 0.02}


@asynccontextmanager
async def replicas(
    url: str, count: int, **overrides: Any
) -> AsyncIterator[tuple[list[AsyncClient], Probe]]:
    """`count` orders processes on one database (each sweeping), and a probe."""
    shared = SharedDatabase()
    settings = service_settings(Settings, url, **overrides)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                running_client(create_app(settings, connect=shared.connect))
            )
            for _ in range(count)
        ]
        probe = await stack.enter_async_context(probe_on(url, SERVICE))
        yield clients, probe


async def a_ticket(probe: Probe) -> str:
    event = ticket_created()
    await probe.publish_and_wait(event)
    return event.id


async def cancelled_of(probe: Probe, order_id: str) -> list[Any]:
    return [
        m.data for m in await probe.stored(Subjects.ORDER_CANCELLED) if m.data["id"] == order_id
    ]


class TestExpirySweep:
    async def test_lost_expiration_is_cancelled_once_by_two_racing_sweepers(
        self, jetstream_clean: str
    ) -> None:
        async with replicas(jetstream_clean, 2, EXPIRATION_GRACE_SECONDS=0.1, **SWEEP) as (
            (first, second),
            probe,
        ):
            ticket_id, buyer = await a_ticket(probe), random_id()
            order = await place_order(first, ticket_id, buyer)

            async def cancelled() -> bool:
                shown = await show_order(second, order["id"], buyer)
                return bool(shown["status"] == "cancelled")

            await eventually(cancelled, timeout=10, what="the sweep cancelling the order")
            # Both sweepers keep passing over it meanwhile; nothing more comes.
            await asyncio.sleep(0.5)
            assert await cancelled_of(probe, order["id"]) == [
                {"id": order["id"], "version": 1, "ticket": {"id": ticket_id}}
            ]
            shown = await show_order(first, order["id"], buyer)
            assert (shown["version"], shown["cancelReason"]) == (1, "Not paid in time")
            assert not await probe.stored(Subjects.EXPIRATION_COMPLETE)
            # The ticket is free again.
            await place_order(second, ticket_id, random_id())

    async def test_paid_order_is_left_alone_and_only_the_unpaid_one_swept(
        self, jetstream_clean: str
    ) -> None:
        async with replicas(jetstream_clean, 1, EXPIRATION_GRACE_SECONDS=0, **SWEEP) as (
            (client,),
            probe,
        ):
            buyer = random_id()
            paid = await place_order(client, await a_ticket(probe), buyer)
            unpaid = await place_order(client, await a_ticket(probe), buyer)
            await probe.publish_and_wait(payment_created(paid["id"]))

            async def unpaid_cancelled() -> bool:
                shown = await show_order(client, unpaid["id"], buyer)
                return bool(shown["status"] == "cancelled")

            await eventually(unpaid_cancelled, timeout=10, what="the unpaid order swept")
            await asyncio.sleep(0.2)
            assert (await show_order(client, paid["id"], buyer))["status"] == "complete"
            assert await cancelled_of(probe, paid["id"]) == []

    async def test_order_within_the_grace_is_left_for_its_expiration_job(
        self, jetstream_clean: str
    ) -> None:
        async with replicas(jetstream_clean, 1, EXPIRATION_GRACE_SECONDS=30, **SWEEP) as (
            (client,),
            probe,
        ):
            buyer = random_id()
            order = await place_order(client, await a_ticket(probe), buyer)
            await asyncio.sleep(1.5)  # past expiresAt, within the grace
            assert (await show_order(client, order["id"], buyer))["status"] == "created"
            assert await cancelled_of(probe, order["id"]) == []
