"""The orders listeners against a real JetStream (docs/SPEC.md §4, handler rules)."""

import asyncio
from typing import Any

from httpx import AsyncClient

from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.api import ORDERS, place_order, show_order
from ticketing_testing.factories import (
    expiration_complete,
    payment_created,
    ticket_created,
    ticket_updated,
)
from ticketing_testing.http import errors, signed_in
from ticketing_testing.stream import Probe


async def replica(client: AsyncClient, ticket_id: str) -> dict[str, Any]:
    """The replica as orders shows it: the ticket embedded in a new order for it."""
    order = await place_order(client, ticket_id, random_id())
    ticket: dict[str, Any] = order["ticket"]
    return ticket


async def order_events(probe: Probe) -> list[tuple[str, Any]]:
    stored = await probe.stored()
    return [(m.subject, m.data) for m in stored if m.subject.startswith("order:")]


class TestTicketCreated:
    async def test_new_ticket_is_replicated_with_its_exact_price(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        event = ticket_created(title="opera", price=19.99)
        await probe.publish_and_wait(event)
        assert await replica(client, event.id) == {
            "id": event.id,
            "title": "opera",
            "price": 19.99,
            "version": 0,
        }

    async def test_duplicate_is_a_no_op(self, client: AsyncClient, probe: Probe) -> None:
        event = ticket_created(title="first", price="10")
        await probe.publish_and_wait(event)
        repeat = ticket_created(event.id, title="second", price="99")
        await probe.publish_and_wait(repeat, msg_id=random_id())
        assert await replica(client, event.id) == {
            "id": event.id,
            "title": "first",
            "price": 10,
            "version": 0,
        }

    async def test_invalid_payload_is_dropped_and_later_events_still_apply(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        bad = await probe.js.publish(Subjects.TICKET_CREATED.value, b'{"id": "nope"}')
        await probe.wait_handled(Subjects.TICKET_CREATED, bad.seq)
        event = ticket_created()
        await probe.publish_and_wait(event)
        assert (await replica(client, event.id))["id"] == event.id


class TestTicketUpdated:
    async def test_next_version_is_applied(self, client: AsyncClient, probe: Probe) -> None:
        created = ticket_created(title="concert", price="20")
        await probe.publish_and_wait(created)
        await probe.publish_and_wait(ticket_updated(created.id, 1, title="gig", price="25.50"))
        assert await replica(client, created.id) == {
            "id": created.id,
            "title": "gig",
            "price": 25.5,
            "version": 1,
        }

    async def test_v2_before_v1_ends_at_v2(self, client: AsyncClient, probe: Probe) -> None:
        created = ticket_created(title="v0", price="10")
        await probe.publish_and_wait(created)
        await probe.publish(ticket_updated(created.id, 2, title="v2", price="30"))
        # v2 cannot apply on v0: it waits, unacked, for v1.
        await asyncio.sleep(0.3)
        assert await probe.unacked(Subjects.TICKET_UPDATED) == 1
        last = await probe.publish(ticket_updated(created.id, 1, title="v1", price="20"))
        await probe.wait_handled(Subjects.TICKET_UPDATED, last.seq)
        assert await replica(client, created.id) == {
            "id": created.id,
            "title": "v2",
            "price": 30,
            "version": 2,
        }

    async def test_update_before_the_ticket_exists_is_applied_once_it_does(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created(title="v0")
        update = await probe.publish(ticket_updated(created.id, 1, title="v1", price="12.34"))
        await probe.publish_and_wait(created)
        await probe.wait_handled(Subjects.TICKET_UPDATED, update.seq)
        assert await replica(client, created.id) == {
            "id": created.id,
            "title": "v1",
            "price": 12.34,
            "version": 1,
        }

    async def test_updates_in_reverse_order_end_at_the_last(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created()
        await probe.publish_and_wait(created)
        seqs = [
            (await probe.publish(ticket_updated(created.id, v, title=f"v{v}", price=v))).seq
            for v in range(5, 0, -1)
        ]
        await probe.wait_handled(Subjects.TICKET_UPDATED, max(seqs), timeout=20)
        assert await replica(client, created.id) == {
            "id": created.id,
            "title": "v5",
            "price": 5,
            "version": 5,
        }

    async def test_stale_event_is_acked_without_change(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = ticket_created()
        await probe.publish_and_wait(created)
        await probe.publish_and_wait(ticket_updated(created.id, 1, title="v1", price="11"))
        await probe.publish_and_wait(ticket_updated(created.id, 2, title="v2", price="22"))
        # Redeliveries of older versions, under fresh message ids so the stream keeps them.
        await probe.publish_and_wait(
            ticket_updated(created.id, 1, title="stale", price="1"), msg_id=random_id()
        )
        await probe.publish_and_wait(
            ticket_updated(created.id, 2, title="stale", price="2"), msg_id=random_id()
        )
        assert await probe.unacked(Subjects.TICKET_UPDATED) == 0
        assert await replica(client, created.id) == {
            "id": created.id,
            "title": "v2",
            "price": 22,
            "version": 2,
        }


async def ordered(client: AsyncClient, probe: Probe) -> tuple[dict[str, Any], str]:
    """A fresh `created` order and its owner."""
    event = ticket_created()
    await probe.publish_and_wait(event)
    user_id = random_id()
    return await place_order(client, event.id, user_id), user_id


class TestExpirationComplete:
    async def test_created_order_is_cancelled_and_its_ticket_released(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        order, user_id = await ordered(client, probe)
        await probe.publish_and_wait(expiration_complete(order["id"]))
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        stored = await probe.stored(Subjects.ORDER_CANCELLED)
        assert [(m.data, m.msg_id) for m in stored] == [
            (
                {"id": order["id"], "version": 1, "ticket": {"id": order["ticket"]["id"]}},
                f"order:cancelled:{order['id']}:1",
            )
        ]
        again = await place_order(client, order["ticket"]["id"], random_id())
        assert again["status"] == "created"

    async def test_duplicate_expiry_cancels_once(self, client: AsyncClient, probe: Probe) -> None:
        order, user_id = await ordered(client, probe)
        await probe.publish_and_wait(expiration_complete(order["id"]))
        await probe.publish_and_wait(expiration_complete(order["id"]), msg_id=random_id())
        assert (await show_order(client, order["id"], user_id))["version"] == 1
        assert len(await probe.stored(Subjects.ORDER_CANCELLED)) == 1

    async def test_complete_order_is_left_alone_and_nothing_published(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        order, user_id = await ordered(client, probe)
        await probe.publish_and_wait(payment_created(order["id"]))
        before = await order_events(probe)
        await probe.publish_and_wait(expiration_complete(order["id"]))
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("complete", 1)
        assert await order_events(probe) == before
        # Still holding its ticket.
        response = await client.post(
            ORDERS, json={"ticketId": order["ticket"]["id"]}, headers=signed_in()
        )
        assert errors(response) == [{"message": "Ticket is already reserved"}]

    async def test_cancelled_order_is_left_alone_and_nothing_published(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        order, user_id = await ordered(client, probe)
        cancel = await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(user_id))
        assert cancel.status_code == 204
        before = await order_events(probe)
        await probe.publish_and_wait(expiration_complete(order["id"]))
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        assert await order_events(probe) == before

    async def test_unknown_order_is_acked(self, client: AsyncClient, probe: Probe) -> None:
        await probe.publish_and_wait(expiration_complete(random_id()))
        assert await probe.unacked(Subjects.EXPIRATION_COMPLETE) == 0
        assert await order_events(probe) == []


class TestPaymentCreated:
    async def test_created_order_becomes_complete_without_an_event(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        order, user_id = await ordered(client, probe)
        before = await order_events(probe)
        await probe.publish_and_wait(payment_created(order["id"]))
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("complete", 1)
        assert await order_events(probe) == before

    async def test_duplicate_payment_is_a_no_op(self, client: AsyncClient, probe: Probe) -> None:
        order, user_id = await ordered(client, probe)
        payment = payment_created(order["id"])
        await probe.publish_and_wait(payment)
        await probe.publish_and_wait(payment, msg_id=random_id())
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("complete", 1)

    async def test_payment_for_a_cancelled_order_leaves_it_cancelled(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        order, user_id = await ordered(client, probe)
        await probe.publish_and_wait(expiration_complete(order["id"]))
        await probe.publish_and_wait(payment_created(order["id"]))
        shown = await show_order(client, order["id"], user_id)
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        # The ticket stays free for others; payments refunds the late charge.
        again = await place_order(client, order["ticket"]["id"], random_id())
        assert again["status"] == "created"

    async def test_unknown_order_is_acked(self, client: AsyncClient, probe: Probe) -> None:
        await probe.publish_and_wait(payment_created(random_id()))
        assert await probe.unacked(Subjects.PAYMENT_CREATED) == 0

    async def test_expiry_and_payment_racing_end_in_one_consistent_state(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        orders = [await ordered(client, probe) for _ in range(10)]
        acks = []
        for order, _ in orders:
            acks.append(await probe.publish(expiration_complete(order["id"])))
            acks.append(await probe.publish(payment_created(order["id"])))
        for ack, subject in zip(
            acks, [Subjects.EXPIRATION_COMPLETE, Subjects.PAYMENT_CREATED] * 10, strict=True
        ):
            await probe.wait_handled(subject, ack.seq)
        cancelled = {m.data["id"] for m in await probe.stored(Subjects.ORDER_CANCELLED)}
        for order, user_id in orders:
            shown = await show_order(client, order["id"], user_id)
            assert shown["version"] == 1
            assert shown["status"] in {"cancelled", "complete"}
            assert (shown["status"] == "cancelled") == (order["id"] in cancelled)
