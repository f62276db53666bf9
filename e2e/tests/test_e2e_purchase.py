"""The whole system as `make dev` runs it, used over HTTP through the gateway.

One stack per module (started like `make dev`, with a short expiration window); each test
signs up its own users and sells its own tickets, so the tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from ticketing_devstack.stack import Stack
from ticketing_testing.remote import (
    listed_ticket_ids,
    order_ticket,
    pay,
    poll,
    sell,
    sign_up,
    wait_for_status,
)
from ticketing_testing.stripe import payment_intents_for, stripe_list

EXPIRATION_WINDOW_SECONDS = 6


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(expiration_window_seconds=EXPIRATION_WINDOW_SECONDS) as running:
        yield running
    left = running.leftovers()
    assert left == [], f"the stack left {left}"


@pytest.fixture
def gateway(stack: Stack) -> str:
    return stack.gateway_url


@pytest.fixture
def localstripe(stack: Stack) -> str:
    assert stack.localstripe_url is not None
    return stack.localstripe_url


class TestPurchase:
    def test_second_user_orders_and_pays_and_the_order_completes(
        self, gateway: str, localstripe: str
    ) -> None:
        seller, buyer = sign_up(gateway), sign_up(gateway)
        ticket = sell(seller, "Opera", "19.99")
        assert ticket["id"] in listed_ticket_ids(gateway)

        created = order_ticket(buyer, ticket["id"])
        assert created.status_code == 201, created.text
        order = created.json()
        assert order["status"] == "created"
        assert order["ticket"] == {
            "id": ticket["id"],
            "title": "Opera",
            "price": 19.99,
            "version": 0,
        }
        paid = pay(buyer, order["id"])
        assert paid.status_code == 201, paid.text

        complete = wait_for_status(buyer, order["id"], "complete")
        assert complete["ticket"]["id"] == ticket["id"]
        (mine,) = buyer.get("/api/orders").json()
        assert (mine["id"], mine["status"]) == (order["id"], "complete")
        # The reservation reaches tickets: the sold ticket carries the order and is unlisted.
        shown = poll(
            lambda: (t := seller.get(f"/api/tickets/{ticket['id']}").json()).get("orderId") and t,
            what="ticket shows its order",
        )
        assert shown["orderId"] == order["id"]
        assert ticket["id"] not in listed_ticket_ids(gateway)
        # Charged once, in integer cents (19.99 is not 1998).
        (intent,) = payment_intents_for(localstripe, order["id"])
        assert (intent["status"], intent["amount"], intent["currency"]) == (
            "succeeded",
            1999,
            "usd",
        )

    def test_declined_card_is_400_and_a_good_card_then_pays(
        self, gateway: str, localstripe: str
    ) -> None:
        seller, buyer = sign_up(gateway), sign_up(gateway)
        ticket = sell(seller)
        order = order_ticket(buyer, ticket["id"]).json()

        declined = pay(buyer, order["id"], "pm_card_chargeCustomerFail")

        assert declined.status_code == 400, declined.text
        (error,) = declined.json()["errors"]
        assert "declined" in error["message"].lower()
        assert buyer.get(f"/api/orders/{order['id']}").json()["status"] == "created"
        paid = pay(buyer, order["id"], "pm_card_visa")
        assert paid.status_code == 201, paid.text
        wait_for_status(buyer, order["id"], "complete")
        succeeded = [
            i for i in payment_intents_for(localstripe, order["id"]) if i["status"] == "succeeded"
        ]
        assert len(succeeded) == 1

    async def test_ten_concurrent_payments_charge_once(
        self, gateway: str, localstripe: str
    ) -> None:
        seller, buyer = sign_up(gateway), sign_up(gateway)
        ticket = sell(seller, "Final", 55)
        order = order_ticket(buyer, ticket["id"]).json()
        # A declined attempt first: once it is a 400 (not 404), payments knows the order,
        # so all ten requests below race for the one charge.
        declined = pay(buyer, order["id"], "pm_card_chargeCustomerFail")
        assert declined.status_code == 400, declined.text

        async with httpx.AsyncClient(
            base_url=gateway, cookies=buyer.cookies, trust_env=False, timeout=60.0
        ) as http:
            body = {"orderId": order["id"], "token": "pm_card_visa"}
            responses = await asyncio.gather(
                *(http.post("/api/payments", json=body) for _ in range(10))
            )

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [400] * 9, [r.text for r in responses]
        for response in responses:
            if response.status_code == 400:
                assert response.json() == {"errors": [{"message": "Order is already paid"}]}
        wait_for_status(buyer, order["id"], "complete")
        intents = payment_intents_for(localstripe, order["id"])
        succeeded = [i for i in intents if i["status"] == "succeeded"]
        assert len(succeeded) == 1, intents
        order_intents = {i["id"] for i in intents}
        charges = [
            c
            for c in stripe_list(localstripe, "charges")
            if c["payment_intent"] in order_intents and c["status"] == "succeeded"
        ]
        assert [(c["amount"], c["paid"], c["refunded"]) for c in charges] == [(5500, True, False)]


class TestExpiry:
    def test_unpaid_order_expires_and_the_ticket_is_free_again(self, gateway: str) -> None:
        seller, buyer, other = sign_up(gateway), sign_up(gateway), sign_up(gateway)
        ticket = sell(seller, "Matinee", 12.5)
        order = order_ticket(buyer, ticket["id"]).json()
        expires_at = datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00"))
        created_at = time.time()
        assert abs(expires_at.timestamp() - created_at - EXPIRATION_WINDOW_SECONDS) < 3
        # Reserved: a second order is refused, and tickets stops listing it.
        refused = other.post("/api/orders", json={"ticketId": ticket["id"]})
        assert refused.status_code == 400, refused.text
        assert refused.json() == {"errors": [{"message": "Ticket is already reserved"}]}
        poll(lambda: ticket["id"] not in listed_ticket_ids(gateway), what="ticket unlisted")

        cancelled = wait_for_status(
            buyer, order["id"], "cancelled", timeout=EXPIRATION_WINDOW_SECONDS + 20
        )

        assert cancelled["ticket"]["id"] == ticket["id"]
        assert time.time() >= expires_at.timestamp() - 0.5
        poll(lambda: ticket["id"] in listed_ticket_ids(gateway), what="ticket listed again")
        late = buyer.post("/api/payments", json={"orderId": order["id"], "token": "pm_card_visa"})
        assert late.status_code == 400, late.text
        assert late.json()["errors"][0]["message"] in (
            "Order has expired",
            "Cannot pay for a cancelled order",
        )
        again = other.post("/api/orders", json={"ticketId": ticket["id"]})
        assert again.status_code == 201, again.text
        assert again.json()["status"] == "created"


class TestCancel:
    def test_cancelled_order_frees_the_ticket(self, gateway: str) -> None:
        seller, buyer, other = sign_up(gateway), sign_up(gateway), sign_up(gateway)
        ticket = sell(seller, "Recital", 30)
        order = order_ticket(buyer, ticket["id"]).json()
        poll(lambda: ticket["id"] not in listed_ticket_ids(gateway), what="ticket unlisted")

        deleted = buyer.delete(f"/api/orders/{order['id']}")

        assert deleted.status_code == 204, deleted.text
        assert buyer.get(f"/api/orders/{order['id']}").json()["status"] == "cancelled"
        poll(lambda: ticket["id"] in listed_ticket_ids(gateway), what="ticket listed again")
        again = other.post("/api/orders", json={"ticketId": ticket["id"]})
        assert again.status_code == 201, again.text
