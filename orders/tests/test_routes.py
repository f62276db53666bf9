"""Every orders row of docs/SPEC.md §3 through HTTP, bad inputs included."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from orders.app import create_app
from orders.config import SERVICE, Settings, get_settings
from orders.repository import Orders
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.api import ORDERS, place_order, show_order
from ticketing_testing.database import connect_yielding
from ticketing_testing.factories import payment_created, ticket_created, ticket_updated
from ticketing_testing.http import errors, fields, signed_in
from ticketing_testing.services import running_client, service_settings
from ticketing_testing.stream import Probe, probe_on

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def seed_ticket(probe: Probe, title: str = "concert", price: Any = "20") -> str:
    event = ticket_created(title=title, price=price)
    await probe.publish_and_wait(event)
    return event.id


class TestCreateOrder:
    async def test_order_for_a_known_ticket_is_201_with_the_order(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe, title="concert", price="20")
        user_id = random_id()
        before = datetime.now(UTC)
        response = await client.post(
            ORDERS, json={"ticketId": ticket_id}, headers=signed_in(user_id)
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "userId", "status", "expiresAt", "ticket", "version"}
        assert re.fullmatch(r"[0-9a-f]{24}", body["id"])
        assert body["userId"] == user_id
        assert body["status"] == "created"
        assert body["version"] == 0
        assert body["ticket"] == {"id": ticket_id, "title": "concert", "price": 20, "version": 0}
        assert ISO_UTC.match(body["expiresAt"])
        expires = parse_iso(body["expiresAt"])
        window = timedelta(seconds=900)
        assert before + window - timedelta(seconds=1) <= expires
        assert expires <= datetime.now(UTC) + window

    async def test_order_created_is_published_with_its_message_id(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe, price="19.99")
        user_id = random_id()
        order = await place_order(client, ticket_id, user_id)
        stored = await probe.stored(Subjects.ORDER_CREATED)
        assert len(stored) == 1
        assert stored[0].msg_id == f"order:created:{order['id']}:0"
        assert stored[0].data == {
            "id": order["id"],
            "version": 0,
            "status": "created",
            "userId": user_id,
            "expiresAt": order["expiresAt"],
            "ticket": {"id": ticket_id, "price": 19.99, "version": 0},
        }
        # The exact JSON number, not 19.989999... or a string.
        assert b'"price": 19.99,' in stored[0].raw

    async def test_price_is_shown_as_the_exact_number(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe, price=999999.99)
        order = await place_order(client, ticket_id, random_id())
        assert order["ticket"]["price"] == 999999.99
        assert (
            '"price":999999.99'
            in (
                await client.get(f"{ORDERS}/{order['id']}", headers=signed_in(order["userId"]))
            ).text
        )

    async def test_expires_at_follows_the_expiration_window_setting(
        self, jetstream_clean: str
    ) -> None:
        settings = service_settings(Settings, jetstream_clean, EXPIRATION_WINDOW_SECONDS=60)
        async with (
            running_client(create_app(settings)) as client,
            probe_on(jetstream_clean, SERVICE) as probe,
        ):
            ticket_id = await seed_ticket(probe)
            order = await place_order(client, ticket_id, random_id())
            left = parse_iso(order["expiresAt"]) - datetime.now(UTC)
            assert timedelta(seconds=58) < left <= timedelta(seconds=60)

    async def test_signed_out_is_401(self, client: AsyncClient, probe: Probe) -> None:
        ticket_id = await seed_ticket(probe)
        response = await client.post(ORDERS, json={"ticketId": ticket_id})
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]
        assert await probe.stored(Subjects.ORDER_CREATED) == []

    @pytest.mark.parametrize(
        "content", [b'{"ticketId": ', b"[]", b'{"ticketId": 5}', b"", b'"text"']
    )
    async def test_signed_out_is_401_before_the_body_is_validated(
        self, client: AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            ORDERS, content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_order_sent_while_the_tickets_event_is_on_its_way_waits_for_it(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        # The seller's 201 can reach the buyer before orders has the ticket.
        event = ticket_created()
        placing = asyncio.create_task(
            client.post(ORDERS, json={"ticketId": event.id}, headers=signed_in())
        )
        await asyncio.sleep(0.05)
        assert not placing.done()
        await probe.publish(event)
        response = await placing
        assert response.status_code == 201, response.text
        assert response.json()["ticket"]["id"] == event.id

    async def test_unknown_ticket_is_404(self, client: AsyncClient) -> None:
        response = await client.post(ORDERS, json={"ticketId": random_id()}, headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    @pytest.mark.parametrize(
        "ticket_id",
        [
            "abc",
            "",
            "0123456789abcdef0123456",
            "0123456789abcdef012345678",
            "0123456789ABCDEF01234567",
            "0123456789abcdef0123456g",
            123,
            12.5,
            True,
            None,
            ["0123456789abcdef01234567"],
            {"$ne": None},
        ],
    )
    async def test_ticket_id_that_is_not_an_object_id_is_400_with_field(
        self, client: AsyncClient, ticket_id: object
    ) -> None:
        response = await client.post(ORDERS, json={"ticketId": ticket_id}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": "Must be a valid id", "field": "ticketId"}]

    async def test_missing_ticket_id_is_400_with_field(self, client: AsyncClient) -> None:
        response = await client.post(ORDERS, json={}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": "Required", "field": "ticketId"}]

    async def test_snake_case_ticket_id_is_not_accepted(self, client: AsyncClient) -> None:
        response = await client.post(ORDERS, json={"ticket_id": random_id()}, headers=signed_in())
        assert response.status_code == 400
        assert fields(response) == ["ticketId"]

    async def test_malformed_json_is_400_without_field(self, client: AsyncClient) -> None:
        response = await client.post(
            ORDERS,
            content=b'{"ticketId": ',
            headers={"content-type": "application/json", **signed_in()},
        )
        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body is not valid JSON"}]

    @pytest.mark.parametrize("content", [b"[]", b'"0123456789abcdef01234567"', b"5", b"null", b""])
    async def test_body_that_is_not_an_object_is_400_without_field(
        self, client: AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            ORDERS,
            content=content,
            headers={"content-type": "application/json", **signed_in()},
        )
        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body must be a JSON object"}]

    async def test_trailing_slash_answers_the_same(self, client: AsyncClient, probe: Probe) -> None:
        ticket_id = await seed_ticket(probe)
        response = await client.post(
            f"{ORDERS}/", json={"ticketId": ticket_id}, headers=signed_in()
        )
        assert response.status_code == 201

    async def test_reserved_ticket_is_400(self, client: AsyncClient, probe: Probe) -> None:
        ticket_id = await seed_ticket(probe)
        await place_order(client, ticket_id, random_id())
        response = await client.post(ORDERS, json={"ticketId": ticket_id}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": "Ticket is already reserved"}]
        assert len(await probe.stored(Subjects.ORDER_CREATED)) == 1

    async def test_ticket_is_free_again_after_its_order_is_cancelled(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe)
        user_id = random_id()
        first = await place_order(client, ticket_id, user_id)
        cancel = await client.delete(f"{ORDERS}/{first['id']}", headers=signed_in(user_id))
        assert cancel.status_code == 204
        second = await place_order(client, ticket_id, random_id())
        assert second["id"] != first["id"]

    async def test_ticket_of_a_completed_order_stays_reserved(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe)
        user_id = random_id()
        order = await place_order(client, ticket_id, user_id)
        await probe.publish_and_wait(payment_created(order["id"]))
        assert (await show_order(client, order["id"], user_id))["status"] == "complete"
        response = await client.post(ORDERS, json={"ticketId": ticket_id}, headers=signed_in())
        assert response.status_code == 400
        assert errors(response) == [{"message": "Ticket is already reserved"}]

    async def test_concurrent_orders_for_one_ticket_give_one_201(self, settings: Settings) -> None:
        # Every database call yields to the event loop, as a networked driver does, so the
        # 20 requests interleave between their reads and their writes.
        async with (
            running_client(create_app(settings, connect=connect_yielding)) as client,
            probe_on(settings.NATS_URL, SERVICE) as probe,
        ):
            ticket_id = await seed_ticket(probe)
            responses = await asyncio.gather(
                *(
                    client.post(
                        ORDERS, json={"ticketId": ticket_id}, headers=signed_in(random_id())
                    )
                    for _ in range(20)
                )
            )
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [201] + [400] * 19
            for response in responses:
                if response.status_code == 400:
                    assert errors(response) == [{"message": "Ticket is already reserved"}]
            winner = next(r.json() for r in responses if r.status_code == 201)
            stored = await probe.stored(Subjects.ORDER_CREATED)
            assert [message.data["id"] for message in stored] == [winner["id"]]


class TestListOrders:
    async def test_signed_out_is_401(self, client: AsyncClient) -> None:
        response = await client.get(ORDERS)
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_no_orders_is_an_empty_list(self, client: AsyncClient) -> None:
        response = await client.get(ORDERS, headers=signed_in())
        assert response.status_code == 200
        assert response.json() == []

    async def test_only_the_callers_orders_oldest_first_with_tickets(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        tickets = [await seed_ticket(probe, title=f"show {n}", price=f"{n}.50") for n in range(3)]
        me, other = random_id(), random_id()
        first = await place_order(client, tickets[2], me)
        await place_order(client, tickets[1], other)
        second = await place_order(client, tickets[0], me)
        response = await client.get(ORDERS, headers=signed_in(me))
        assert response.status_code == 200
        assert response.json() == [first, second]
        assert [order["ticket"] for order in response.json()] == [
            {"id": tickets[2], "title": "show 2", "price": 2.5, "version": 0},
            {"id": tickets[0], "title": "show 0", "price": 0.5, "version": 0},
        ]

    async def test_cancelled_orders_are_listed_with_their_status(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe)
        me = random_id()
        order = await place_order(client, ticket_id, me)
        await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(me))
        listed = (await client.get(ORDERS, headers=signed_in(me))).json()
        assert [(o["id"], o["status"], o["version"]) for o in listed] == [
            (order["id"], "cancelled", 1)
        ]

    async def test_embedded_ticket_is_the_ticket_as_ordered(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe, title="concert", price="20")
        me = random_id()
        order = await place_order(client, ticket_id, me)
        # The tickets service records the reservation: a new ticket version, which the
        # order does not show (it shows the version it was priced at).
        await probe.publish_and_wait(ticket_updated(ticket_id, 1, title="concert", price="20"))
        listed = (await client.get(ORDERS, headers=signed_in(me))).json()
        assert listed[0]["id"] == order["id"]
        assert listed[0]["ticket"] == {
            "id": ticket_id,
            "title": "concert",
            "price": 20,
            "version": 0,
        }


class TestShowOrder:
    async def test_owner_sees_the_order(self, client: AsyncClient, probe: Probe) -> None:
        ticket_id = await seed_ticket(probe)
        me = random_id()
        order = await place_order(client, ticket_id, me)
        response = await client.get(f"{ORDERS}/{order['id']}", headers=signed_in(me))
        assert response.status_code == 200
        assert response.json() == order

    async def test_another_users_order_is_401(self, client: AsyncClient, probe: Probe) -> None:
        order = await place_order(client, await seed_ticket(probe), random_id())
        response = await client.get(f"{ORDERS}/{order['id']}", headers=signed_in(random_id()))
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_signed_out_is_401(self, client: AsyncClient, probe: Probe) -> None:
        order = await place_order(client, await seed_ticket(probe), random_id())
        response = await client.get(f"{ORDERS}/{order['id']}")
        assert response.status_code == 401

    async def test_unknown_order_is_404(self, client: AsyncClient) -> None:
        response = await client.get(f"{ORDERS}/{random_id()}", headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    @pytest.mark.parametrize("order_id", ["abc", "0123456789ABCDEF01234567", "1" * 25])
    async def test_malformed_id_is_404(self, client: AsyncClient, order_id: str) -> None:
        response = await client.get(f"{ORDERS}/{order_id}", headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]


class TestCancelOrder:
    async def test_cancel_is_204_and_publishes_order_cancelled(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ticket_id = await seed_ticket(probe)
        me = random_id()
        order = await place_order(client, ticket_id, me)
        response = await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(me))
        assert response.status_code == 204
        assert response.content == b""
        shown = await show_order(client, order["id"], me)
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        assert shown["expiresAt"] == order["expiresAt"]
        stored = await probe.stored(Subjects.ORDER_CANCELLED)
        assert [(m.data, m.msg_id) for m in stored] == [
            (
                {"id": order["id"], "version": 1, "ticket": {"id": ticket_id}},
                f"order:cancelled:{order['id']}:1",
            )
        ]

    async def test_cancelling_again_is_204_without_change_or_event(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        order = await place_order(client, await seed_ticket(probe), me)
        path = f"{ORDERS}/{order['id']}"
        assert (await client.delete(path, headers=signed_in(me))).status_code == 204
        again = await client.delete(path, headers=signed_in(me))
        assert again.status_code == 204
        shown = await show_order(client, order["id"], me)
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        assert len(await probe.stored(Subjects.ORDER_CANCELLED)) == 1

    async def test_completed_order_is_400_and_stays_complete(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        order = await place_order(client, await seed_ticket(probe), me)
        await probe.publish_and_wait(payment_created(order["id"]))
        response = await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(me))
        assert response.status_code == 400
        assert errors(response) == [{"message": "Cannot cancel a completed order"}]
        shown = await show_order(client, order["id"], me)
        assert (shown["status"], shown["version"]) == ("complete", 1)
        assert await probe.stored(Subjects.ORDER_CANCELLED) == []

    async def test_payment_landing_between_read_and_cancel_wins_and_cancel_is_400(
        self, client: AsyncClient, probe: Probe, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        me = random_id()
        order = await place_order(client, await seed_ticket(probe), me)
        original_get = Orders.get
        paid = False

        async def get_then_let_the_payment_land(self: Orders, order_id: Any) -> Any:
            nonlocal paid
            read = await original_get(self, order_id)
            if not paid:
                paid = True
                # The cancel has read the order `created`; the payment completes it first.
                await probe.publish_and_wait(payment_created(order["id"]))
            return read

        monkeypatch.setattr(Orders, "get", get_then_let_the_payment_land)
        response = await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(me))
        assert paid
        assert response.status_code == 400
        assert errors(response) == [{"message": "Cannot cancel a completed order"}]
        shown = await show_order(client, order["id"], me)
        assert (shown["status"], shown["version"]) == ("complete", 1)
        assert await probe.stored(Subjects.ORDER_CANCELLED) == []

    async def test_another_users_order_is_401_and_unchanged(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        me = random_id()
        order = await place_order(client, await seed_ticket(probe), me)
        response = await client.delete(f"{ORDERS}/{order['id']}", headers=signed_in(random_id()))
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]
        assert (await show_order(client, order["id"], me))["status"] == "created"
        assert await probe.stored(Subjects.ORDER_CANCELLED) == []

    async def test_signed_out_is_401(self, client: AsyncClient, probe: Probe) -> None:
        me = random_id()
        order = await place_order(client, await seed_ticket(probe), me)
        response = await client.delete(f"{ORDERS}/{order['id']}")
        assert response.status_code == 401
        assert (await show_order(client, order["id"], me))["status"] == "created"

    async def test_unknown_order_is_404(self, client: AsyncClient) -> None:
        response = await client.delete(f"{ORDERS}/{random_id()}", headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    async def test_malformed_id_is_404(self, client: AsyncClient) -> None:
        response = await client.delete(f"{ORDERS}/not-an-id", headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]


class TestServiceSurface:
    async def test_unsupported_method_is_405(self, client: AsyncClient) -> None:
        response = await client.put(ORDERS, json={}, headers=signed_in())
        assert response.status_code == 405
        assert errors(response) == [{"message": "Method not allowed"}]

    async def test_unknown_route_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/api/orders/x/y", headers=signed_in())
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    async def test_health_and_readiness(self, client: AsyncClient) -> None:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "events": True}


class TestSettings:
    def test_missing_jwt_key_refuses_to_start_naming_it(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("JWT_KEY", raising=False)
        monkeypatch.setenv("MONGO_URI", "memory://")
        monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4222")
        get_settings.cache_clear()
        with pytest.raises(SystemExit):
            get_settings()
        get_settings.cache_clear()
        assert "missing required environment variable JWT_KEY" in capsys.readouterr().err

    def test_expiration_window_defaults_to_15_minutes(self) -> None:
        settings = Settings(JWT_KEY="k", MONGO_URI="memory://", NATS_URL="nats://x:4222")
        assert settings.EXPIRATION_WINDOW_SECONDS == 900

    @pytest.mark.parametrize("window", ["0", "-5", "soon"])
    def test_expiration_window_must_be_a_positive_number(
        self, monkeypatch: pytest.MonkeyPatch, window: str
    ) -> None:
        for name, value in {
            "JWT_KEY": "k",
            "MONGO_URI": "memory://",
            "NATS_URL": "nats://x:4222",
            "EXPIRATION_WINDOW_SECONDS": window,
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        with pytest.raises(SystemExit):
            get_settings()
        get_settings.cache_clear()
