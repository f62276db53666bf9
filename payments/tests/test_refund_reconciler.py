"""Refunds of charged orders that ended cancelled outlive Stripe outages: the payment is
`refundDue` and the reconciler retries it with back-off until it is refunded, or until a
person must look (docs/SPEC.md §4)."""

import asyncio
import logging

import pytest

from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.checkout import payments_settings, running_payments, seed_order
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_cancelled
from ticketing_testing.http import signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe, StripeProxy, stripe_proxy

# Test-scale refund timings, and an event give-up far shorter than the outage below.
FAST_REFUNDS = {
    "REFUND_INTERVAL_SECONDS": 0.1,
    "REFUND_RETRY_MIN_SECONDS": 0.1,
    "REFUND_RETRY_MAX_SECONDS": 0.2,
    "EVENT_GIVE_UP_SECONDS": 0.5,
}


def refund_calls(proxy: StripeProxy) -> int:
    return sum(1 for r in proxy.requests if r.path == "/v1/refunds")


class TestRefundReconciler:
    async def test_refund_failing_past_the_event_give_up_is_retried_until_refunded(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url, **FAST_REFUNDS)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                paid = await service.pay(order_id, "pm_card_visa", signed_in(user))
                assert paid.status_code == 201, paid.text
                proxy.mode = "fail_before"  # Stripe is down from now on

                await probe.publish(order_cancelled(order_id, version=1))
                # Longer than the event's give-up: the old handler dropped the refund here.
                await asyncio.sleep(1.5)

                due = await service.payment(order_id)
                assert due is not None and due["status"] == PaymentStatus.REFUND_DUE
                assert due["refundAttempts"] >= 2  # retried meanwhile
                assert await probe.unacked(Subjects.ORDER_CANCELLED) == 0
                proxy.mode = "pass"

                async def refunded() -> bool:
                    payment = await service.payment(order_id)
                    return payment is not None and payment["status"] == PaymentStatus.REFUNDED

                await eventually(refunded, what="the due refund once Stripe is back")

        [intent] = await localstripe.payment_intents()
        [refund] = await localstripe.refunds(intent["id"])
        assert refund["amount"] == 1999

    async def test_refund_that_keeps_failing_needs_a_person_and_stops(
        self,
        jetstream_clean: str,
        probe: Probe,
        localstripe: LocalStripe,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="payments.refunds")
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(
                jetstream_clean, proxy.url, REFUND_MAX_ATTEMPTS=3, **FAST_REFUNDS
            )
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                paid = await service.pay(order_id, "pm_card_visa", signed_in(user))
                assert paid.status_code == 201, paid.text
                proxy.mode = "fail_before"

                await probe.publish(order_cancelled(order_id, version=1))

                async def given_up() -> bool:
                    payment = await service.payment(order_id)
                    return payment is not None and payment.get("needsAttention") is True

                await eventually(given_up, what="the refund to be given up")
                calls = refund_calls(proxy)
                await asyncio.sleep(0.6)  # several reconciler rounds
                assert refund_calls(proxy) == calls  # no more tries
                payment = await service.payment(order_id)
                needs_attention = service.state["refunds"].needs_attention

        assert payment is not None
        assert (payment["status"], payment["refundAttempts"]) == (PaymentStatus.REFUND_DUE, 3)
        assert needs_attention == 1
        assert any("a person must refund it" in r.getMessage() for r in caplog.records)
        [intent] = await localstripe.payment_intents()
        assert await localstripe.refunds(intent["id"]) == []
