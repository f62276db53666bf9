"""Events on the real TICKETING stream: what tickets publishes, how its listeners apply
`order:created` / `order:cancelled` in any order and any number of times, and the
outbox riding out a broker outage."""

import asyncio
import logging
import random
from typing import Any

import pytest
from httpx import AsyncClient

from ticketing_common.events import Subjects, TicketCreatedEvent
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.api import TICKETS, create_ticket
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_cancelled, order_created
from ticketing_testing.http import signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe, deliver, probe_on
from tickets.app import create_app
from tickets.config import SERVICE, Settings
from tickets.repository import Tickets


async def ticket(client: AsyncClient, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"{TICKETS}/{ticket_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def updates_of(probe: Probe, ticket_id: str) -> list[dict[str, Any]]:
    """The `ticket:updated` payloads the stream holds for one ticket, in order."""
    return [
        m.data for m in await probe.stored(Subjects.TICKET_UPDATED) if m.data["id"] == ticket_id
    ]


class TestPublishedEvents:
    async def test_create_publishes_ticket_created(self, client: AsyncClient, probe: Probe) -> None:
        user_id = random_id()
        created = await create_ticket(client, user_id, title="concert", price="19.99")
        [message] = await probe.stored(Subjects.TICKET_CREATED)
        assert message.data == {
            "id": created["id"],
            "version": 0,
            "title": "concert",
            "price": 19.99,
            "userId": user_id,
        }
        assert b'"price": 19.99' in message.raw
        assert message.msg_id == f"ticket:created:{created['id']}:0"

    @pytest.mark.parametrize(
        ("price", "raw"),
        [("10.00", b'"price": 10,'), (0.1, b'"price": 0.1,'), (999999.99, b'"price": 999999.99,')],
    )
    async def test_published_price_is_the_exact_api_number(
        self, client: AsyncClient, probe: Probe, price: Any, raw: bytes
    ) -> None:
        created = await create_ticket(client, random_id(), price=price)
        stored = await probe.stored()
        assert len([m for m in stored if m.subject == "ticket:created"]) == 1, (created, stored)
        [message] = await probe.stored(Subjects.TICKET_CREATED)
        assert message.data["price"] == created["price"]
        assert raw in message.raw

    async def test_update_publishes_ticket_updated_with_the_new_version(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "new", "price": "0.50"},
            headers=signed_in(owner),
        )
        assert response.status_code == 200
        [message] = await probe.stored(Subjects.TICKET_UPDATED)
        assert message.data == {
            "id": created["id"],
            "version": 1,
            "title": "new",
            "price": 0.5,
            "userId": owner,
        }
        assert message.msg_id == f"ticket:updated:{created['id']}:1"

    async def test_a_republished_event_is_dropped_by_its_message_id(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        stored = await probe.stored(Subjects.TICKET_CREATED)
        assert len(stored) == 1, stored
        [message] = stored
        again = TicketCreatedEvent.model_validate(message.data)
        ack = await probe.publish(again)
        assert ack.duplicate is True
        assert len(await probe.stored(Subjects.TICKET_CREATED)) == 1
        assert again.message_id() == f"ticket:created:{created['id']}:0"


class TestOrderCreatedListener:
    async def test_order_reserves_the_ticket_and_publishes_its_order_id(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner, title="gig", price="35.10")
        event = order_created(ticket_id=created["id"])
        await deliver(probe, event)
        assert await ticket(client, created["id"]) == {**created, "version": 1, "orderId": event.id}
        assert await updates_of(probe, created["id"]) == [
            {
                "id": created["id"],
                "version": 1,
                "title": "gig",
                "price": 35.1,
                "userId": owner,
                "orderId": event.id,
            }
        ]
        assert created["id"] not in [t["id"] for t in (await client.get(TICKETS)).json()]

    async def test_redelivered_order_created_republishes_without_a_version_bump(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        await probe.watch(Subjects.TICKET_UPDATED)
        event = order_created(ticket_id=created["id"])
        await deliver(probe, event)
        # The same event again (a fresh message id, so the stream keeps it): a redelivery.
        await deliver(probe, event, msg_id=f"redelivery-{random_id()}")
        await deliver(probe, event, msg_id=f"redelivery-{random_id()}")

        assert (await ticket(client, created["id"]))["version"] == 1
        sent = probe.seen[Subjects.TICKET_UPDATED.value]
        await eventually(lambda: len(sent) >= 3, what="three ticket:updated publishes")
        assert len(sent) == 3
        assert len({m.data for m in sent}) == 1
        assert {(m.headers or {}).get("Nats-Msg-Id") for m in sent} == {
            f"ticket:updated:{created['id']}:1"
        }
        # The stream keeps one: the re-sends carry the first one's message id.
        [stored] = await updates_of(probe, created["id"])
        assert (stored["version"], stored["orderId"]) == (1, event.id)

    async def test_ticket_held_by_another_order_waits_for_that_cancel(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        first = order_created(ticket_id=created["id"])
        await deliver(probe, first)
        second = order_created(ticket_id=created["id"])
        await probe.publish(second)
        await asyncio.sleep(0.3)  # several redeliveries of `second` meanwhile
        assert (await ticket(client, created["id"]))["orderId"] == first.id

        await probe.publish(order_cancelled(first.id, ticket_id=created["id"]))

        async def taken_by_second() -> bool:
            return (await ticket(client, created["id"])).get("orderId") == second.id

        await eventually(taken_by_second, what="the second order to take the ticket")
        await probe.wait_handled(Subjects.ORDER_CREATED, 0)
        updates = await updates_of(probe, created["id"])
        assert [(u["version"], u.get("orderId")) for u in updates] == [
            (1, first.id),
            (2, None),
            (3, second.id),
        ]
        assert (await ticket(client, created["id"]))["version"] == 3

    async def test_unknown_ticket_is_acked_and_logged(
        self, client: AsyncClient, probe: Probe, caplog: pytest.LogCaptureFixture
    ) -> None:
        unknown = random_id()
        with caplog.at_level(logging.WARNING, logger="tickets.events"):
            await deliver(probe, order_created(ticket_id=unknown))
            await deliver(probe, order_cancelled(random_id(), ticket_id=unknown))
        assert sum(unknown in record.getMessage() for record in caplog.records) == 2
        assert await probe.stored(Subjects.TICKET_UPDATED) == []

    async def test_invalid_payload_is_dropped_and_later_events_still_apply(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        bad = await probe.js.publish(
            Subjects.ORDER_CREATED.value, b'{"id": "nope"}', headers={"Nats-Msg-Id": "bad-1"}
        )
        await probe.wait_handled(Subjects.ORDER_CREATED, bad.seq)
        await deliver(probe, order_created(ticket_id=created["id"]))
        assert (await ticket(client, created["id"]))["version"] == 1


class TestOrderCancelledListener:
    async def test_cancel_releases_the_ticket_and_publishes_without_order_id(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner, price=12)
        event = order_created(ticket_id=created["id"])
        await deliver(probe, event)
        await deliver(probe, order_cancelled(event.id, ticket_id=created["id"]))

        assert await ticket(client, created["id"]) == {**created, "version": 2}
        released = (await updates_of(probe, created["id"]))[-1]
        assert released == {
            "id": created["id"],
            "version": 2,
            "title": created["title"],
            "price": 12,
            "userId": owner,
        }
        assert {**created, "version": 2} in (await client.get(TICKETS)).json()
        edit = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "again", "price": 13},
            headers=signed_in(owner),
        )
        assert edit.status_code == 200
        assert edit.json()["version"] == 3

    async def test_duplicate_cancel_is_harmless(self, client: AsyncClient, probe: Probe) -> None:
        created = await create_ticket(client, random_id())
        event = order_created(ticket_id=created["id"])
        await deliver(probe, event)
        cancel = order_cancelled(event.id, ticket_id=created["id"])
        await deliver(probe, cancel)
        await deliver(probe, cancel, msg_id=f"redelivery-{random_id()}")
        assert (await ticket(client, created["id"]))["version"] == 2
        assert [u["version"] for u in await updates_of(probe, created["id"])] == [1, 2]

    async def test_order_created_redelivered_after_its_cancel_is_ignored(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        event = order_created(ticket_id=created["id"])
        await deliver(probe, event)
        await deliver(probe, order_cancelled(event.id, ticket_id=created["id"]))
        await deliver(probe, event, msg_id=f"redelivery-{random_id()}")
        body = await ticket(client, created["id"])
        assert "orderId" not in body
        assert body["version"] == 2
        assert [u["version"] for u in await updates_of(probe, created["id"])] == [1, 2]

    async def test_cancel_before_create_leaves_the_ticket_free_and_ignores_the_late_create(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        event = order_created(ticket_id=created["id"])
        await deliver(probe, order_cancelled(event.id, ticket_id=created["id"]))
        assert await ticket(client, created["id"]) == created
        await deliver(probe, event)
        assert await ticket(client, created["id"]) == created
        assert await probe.stored(Subjects.TICKET_UPDATED) == []
        assert created in (await client.get(TICKETS)).json()

    async def test_cancel_recorded_between_the_read_and_the_reservation_wins(
        self, client: AsyncClient, probe: Probe, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A cancel of a free ticket's order is remembered without a new version, so the
        # reservation's write must still see it: it misses, and the fresh read ignores it.
        created = await create_ticket(client, random_id())
        event = order_created(ticket_id=created["id"])
        original_get = Tickets.get
        raced = False

        async def get_then_let_the_cancel_land(self: Tickets, ticket_id: Any) -> Any:
            nonlocal raced
            found = await original_get(self, ticket_id)
            if not raced:
                raced = True
                await deliver(probe, order_cancelled(event.id, ticket_id=created["id"]))
            return found

        monkeypatch.setattr(Tickets, "get", get_then_let_the_cancel_land)
        await deliver(probe, event)
        assert raced
        assert await ticket(client, created["id"]) == created
        assert await probe.stored(Subjects.TICKET_UPDATED) == []

    async def test_cancel_of_another_order_does_not_release_the_ticket(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        holder = order_created(ticket_id=created["id"])
        await deliver(probe, holder)
        other = order_created(ticket_id=created["id"])
        await deliver(probe, order_cancelled(other.id, ticket_id=created["id"]))
        assert await ticket(client, created["id"]) == {
            **created,
            "version": 1,
            "orderId": holder.id,
        }
        assert [u["version"] for u in await updates_of(probe, created["id"])] == [1]
        # That other order's late create is ignored, not retried for ever.
        await deliver(probe, other)
        assert (await ticket(client, created["id"]))["orderId"] == holder.id

    async def test_create_and_cancel_in_any_order_end_with_free_tickets(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        tickets = [await create_ticket(client, owner, title=f"t{i}") for i in range(20)]
        publishes = []
        for created in tickets:
            event = order_created(ticket_id=created["id"])
            pair = [event, order_cancelled(event.id, ticket_id=created["id"])]
            random.shuffle(pair)
            publishes.extend(pair)
        acks = await asyncio.gather(*(probe.publish(event) for event in publishes))
        for subject in (Subjects.ORDER_CREATED, Subjects.ORDER_CANCELLED):
            last = max(
                int(ack.seq)
                for ack, event in zip(acks, publishes, strict=True)
                if event.subject is subject
            )
            await probe.wait_handled(subject, last)

        for created in tickets:
            body = await ticket(client, created["id"])
            assert "orderId" not in body
            history = [
                (u["version"], "orderId" in u) for u in await updates_of(probe, created["id"])
            ]
            # Cancel first: nothing happened. Create first: held, then released.
            assert history in ([], [(1, True), (2, False)])
            assert body["version"] == len(history)
        assert len((await client.get(TICKETS)).json()) == 20


class TestOutbox:
    async def test_create_during_a_broker_outage_is_201_and_published_after(
        self, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        settings = service_settings(Settings, nats_server.url, PUBLISH_TIMEOUT_SECONDS=0.5)
        owner = random_id()
        async with running_client(create_app(settings)) as client:
            nats_server.stop()
            with caplog.at_level(logging.INFO, logger="ticketing.outbox"):
                response = await client.post(
                    TICKETS, json={"title": "offline", "price": 7.25}, headers=signed_in(owner)
                )
                assert response.status_code == 201
                ticket_id = response.json()["id"]
                assert (await client.get("/readyz")).status_code == 503
                nats_server.start()

                async with probe_on(nats_server.url, SERVICE) as probe:

                    async def published() -> bool:
                        return len(await probe.stored(Subjects.TICKET_CREATED)) > 0

                    await eventually(published, timeout=20, what="the outbox to publish")
                    await eventually(
                        lambda: any("re-published" in r.getMessage() for r in caplog.records),
                        timeout=20,
                        what="the re-publisher",
                    )
                    [message] = await probe.stored(Subjects.TICKET_CREATED)
            assert message.data == {
                "id": ticket_id,
                "version": 0,
                "title": "offline",
                "price": 7.25,
                "userId": owner,
            }
            assert message.msg_id == f"ticket:created:{ticket_id}:0"
            assert any("left ticket:created" in r.getMessage() for r in caplog.records)
