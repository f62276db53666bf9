"""`ticketing_payments_total{outcome}` on payments' `/metrics` moves with each outcome
(docs/OPERATIONS.md), against localstripe."""

from __future__ import annotations

from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from ticketing_testing import random_id
from ticketing_testing.checkout import PaymentsService, seed_order
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_cancelled
from ticketing_testing.http import signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe


async def outcomes(http: AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ticketing_payments_total"
    }


class TestPaymentOutcomes:
    async def test_a_paid_and_a_declined_attempt_are_counted_by_outcome(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        before = await outcomes(service.http)
        assert before == {
            "paid": 0,
            "declined": 0,
            "requires_action": 0,
            "provider_error": 0,
            "refunded": 0,
            "refund_needs_attention": 0,
        }
        user = random_id()
        paid_order = await seed_order(service, probe, user)
        card = await localstripe.card_token("4242424242424242")
        assert (await service.pay(paid_order, card["id"], signed_in(user))).status_code == 201
        declined_order = await seed_order(service, probe, user)
        declined_card = await localstripe.card_token("4000000000000341")
        response = await service.pay(declined_order, declined_card["id"], signed_in(user))
        assert response.status_code == 400

        after = await outcomes(service.http)
        assert after["paid"] == 1
        assert after["declined"] == 1
        assert after["provider_error"] == 0
        assert after["refunded"] == 0

    async def test_a_paid_order_that_ends_cancelled_is_counted_refunded(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        card = await localstripe.card_token("4242424242424242")
        assert (await service.pay(order_id, card["id"], signed_in(user))).status_code == 201

        await probe.publish_and_wait(order_cancelled(order_id))

        async def refunded() -> bool:
            return (await outcomes(service.http))["refunded"] == 1

        await eventually(refunded, what="the refund counted")
        assert (await outcomes(service.http))["refund_needs_attention"] == 0
