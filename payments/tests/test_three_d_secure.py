"""3-D Secure: a card asking for authentication answers 202 with the intent's client
secret, the browser authenticates (here: localstripe's `_authenticate`, what its Stripe.js
stand-in calls), and `POST /api/payments/{id}/complete` records the outcome."""

from typing import Any

import httpx
import pytest

from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.api import PAYMENTS
from ticketing_testing.checkout import PaymentsService, seed_order
from ticketing_testing.factories import order_cancelled
from ticketing_testing.http import errors, signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe

THREE_D_SECURE_CARDS = ["4000002500003155", "4000002760003184", "4000000000003220"]
AUTHENTICATION_FAILED = "Card authentication failed; please try again or use another card"
NOT_AUTHENTICATED = "Card authentication is not complete; please finish it or pay again"


async def authenticate(localstripe: LocalStripe, client_secret: str, *, success: bool) -> int:
    """What the Stripe.js stand-in does when the buyer completes or fails the 3-D Secure
    step; the status localstripe answers."""
    intent_id = client_secret.split("_secret_")[0]
    async with httpx.AsyncClient(base_url=localstripe.url) as http:
        response = await http.post(
            f"/v1/payment_intents/{intent_id}/_authenticate",
            params={"success": "true" if success else "false"},
            data={"key": "pk_test_payments", "client_secret": client_secret},
        )
    return response.status_code


async def complete(service: PaymentsService, payment_id: str, user: str) -> httpx.Response:
    return await service.http.post(
        f"{PAYMENTS}/{payment_id}/complete", json={}, headers=signed_in(user)
    )


async def start_3ds(
    service: PaymentsService, probe: Probe, localstripe: LocalStripe, card: str
) -> tuple[str, str, dict[str, Any]]:
    """An order paid with `card` up to the authentication step: (user, order, answer)."""
    user = random_id()
    order_id = await seed_order(service, probe, user)
    token = await localstripe.card_token(card)
    response = await service.pay(order_id, token["id"], signed_in(user))
    assert response.status_code == 202, response.text
    return user, order_id, response.json()


async def payment_events(probe: Probe) -> list[Any]:
    return [message.data for message in await probe.stored(Subjects.PAYMENT_CREATED)]


class TestAuthenticationRequired:
    @pytest.mark.parametrize("card", THREE_D_SECURE_CARDS)
    async def test_card_asking_for_authentication_is_202_with_the_client_secret(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe, card: str
    ) -> None:
        _, order_id, body = await start_3ds(service, probe, localstripe, card)

        [intent] = await localstripe.payment_intents()
        assert body == {
            "id": body["id"],
            "status": "requires_action",
            "clientSecret": intent["client_secret"],
        }
        assert intent["status"] == "requires_action"
        assert intent["metadata"]["orderId"] == order_id
        payment = await service.payment(order_id)
        assert payment is not None
        assert (payment["status"], payment["stripeId"]) == (
            PaymentStatus.AUTHENTICATING,
            intent["id"],
        )
        assert await payment_events(probe) == []

    @pytest.mark.parametrize("card", THREE_D_SECURE_CARDS)
    async def test_completed_authentication_pays_once(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe, card: str
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, card)
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 200

        completed = await complete(service, body["id"], user)
        again = await complete(service, body["id"], user)

        assert completed.status_code == 200, completed.text
        assert completed.json() == {"id": body["id"]}
        assert (again.status_code, again.json()) == (200, {"id": body["id"]})
        [intent] = await localstripe.payment_intents()
        assert intent["status"] == "succeeded"
        assert intent["amount"] == 1999
        [event] = await payment_events(probe)
        assert event == {"id": body["id"], "orderId": order_id, "stripeId": intent["id"]}
        paid_again = await service.pay(order_id, "pm_card_visa", signed_in(user))
        assert errors(paid_again) == [{"message": "Order is already paid"}]
        assert len(await localstripe.payment_intents()) == 1

    @pytest.mark.parametrize("card", THREE_D_SECURE_CARDS)
    async def test_failed_authentication_leaves_the_order_payable_with_a_clear_message(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe, card: str
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, card)
        assert await authenticate(localstripe, body["clientSecret"], success=False) == 200

        response = await complete(service, body["id"], user)

        assert response.status_code == 400
        assert errors(response) == [{"message": AUTHENTICATION_FAILED, "field": "token"}]
        [intent] = await localstripe.payment_intents()
        # Cancelled: the browser holds its client secret, so it must not charge later.
        assert intent["status"] == "canceled"
        assert await service.payment(order_id) is None
        assert await payment_events(probe) == []
        retried = await service.pay(order_id, "pm_card_visa", signed_in(user))
        assert retried.status_code == 201, retried.text

    async def test_completion_before_authentication_is_400_and_keeps_the_attempt(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, "4000002500003155")

        early = await complete(service, body["id"], user)

        assert errors(early) == [{"message": NOT_AUTHENTICATED}]
        payment = await service.payment(order_id)
        assert payment is not None and payment["status"] == PaymentStatus.AUTHENTICATING
        # The buyer can still finish it.
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 200
        assert (await complete(service, body["id"], user)).status_code == 200

    async def test_abandoned_authentication_is_cancelled_by_the_next_attempt(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, "4000002500003155")

        paid = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert paid.status_code == 201, paid.text
        abandoned, charged = sorted(await localstripe.payment_intents(), key=lambda i: i["created"])
        assert abandoned["status"] == "canceled"
        assert charged["status"] == "succeeded"
        # The old client secret can no longer take money.
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 400
        late = await complete(service, body["id"], user)
        assert late.status_code == 404
        [event] = await payment_events(probe)
        assert event["stripeId"] == charged["id"]


class TestCancelledDuringAuthentication:
    async def test_cancel_during_authentication_cancels_the_intent(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, "4000002500003155")

        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        [intent] = await localstripe.payment_intents()
        assert intent["status"] == "canceled"
        assert await service.payment(order_id) is None
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 400
        late = await complete(service, body["id"], user)
        assert late.status_code == 404
        assert await payment_events(probe) == []

    async def test_authentication_that_beat_the_cancel_is_refunded(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user, order_id, body = await start_3ds(service, probe, localstripe, "4000002500003155")
        # The buyer authenticates; the order expires before the page reports back.
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 200

        await probe.publish_and_wait(order_cancelled(order_id, version=1))
        late = await complete(service, body["id"], user)

        assert errors(late) == [{"message": "Cannot pay for a cancelled order"}]
        [intent] = await localstripe.payment_intents()
        [refund] = await localstripe.refunds(intent["id"])
        assert refund["amount"] == 1999
        payment = await service.payment(order_id)
        assert payment is not None
        assert (payment["status"], payment["refundId"]) == (PaymentStatus.REFUNDED, refund["id"])


class TestCompletionRules:
    async def test_signed_out_is_401(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        _, _, body = await start_3ds(service, probe, localstripe, "4000002500003155")

        response = await service.http.post(f"{PAYMENTS}/{body['id']}/complete", json={})

        assert errors(response) == [{"message": "Not authorized"}]

    async def test_someone_elses_payment_is_401_and_changes_nothing(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        _, order_id, body = await start_3ds(service, probe, localstripe, "4000002500003155")
        assert await authenticate(localstripe, body["clientSecret"], success=True) == 200

        response = await complete(service, body["id"], random_id())

        assert response.status_code == 401
        payment = await service.payment(order_id)
        assert payment is not None and payment["status"] == PaymentStatus.AUTHENTICATING

    @pytest.mark.parametrize("payment_id", ["6b104e028bf499aa1db08998", "nope"])
    async def test_unknown_or_malformed_payment_is_404(
        self, service: PaymentsService, payment_id: str
    ) -> None:
        response = await complete(service, payment_id, random_id())

        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]
