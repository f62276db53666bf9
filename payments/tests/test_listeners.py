import asyncio

from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_testing import random_id
from ticketing_testing.checkout import (
    PaymentsService,
    payments_settings,
    running_payments,
    seed_order,
)
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_cancelled, order_created
from ticketing_testing.http import errors, signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe, stripe_proxy


class TestOrderCreatedListener:
    async def test_new_order_is_replicated_with_its_price_in_cents(
        self, service: PaymentsService, probe: Probe
    ) -> None:
        user = random_id()
        event = order_created(user_id=user, price=19.99)

        await probe.publish_and_wait(event)

        replica = await service.replica(event.id)
        assert replica is not None
        assert (replica["version"], replica["userId"], replica["status"]) == (0, user, "created")
        assert replica["priceCents"] == 1999
        assert replica["expiresAt"] == event.expires_at

    async def test_duplicate_order_created_changes_nothing(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        event = order_created(user_id=user, price="10.00")
        await probe.publish(event)
        # A redelivery that differs (say, a bug upstream) must not overwrite the replica.
        altered = order_created(user_id=user, price="99.00", order_id=event.id)
        await probe.publish_and_wait(altered, msg_id="redelivered")

        assert (await service.pay(event.id, "pm_card_visa", signed_in(user))).status_code == 201
        [intent] = await localstripe.payment_intents()
        assert intent["amount"] == 1000


class TestOrderCancelledListener:
    async def test_cancelled_event_marks_the_replica_cancelled_at_its_version(
        self, service: PaymentsService, probe: Probe
    ) -> None:
        order_id = await seed_order(service, probe, random_id())

        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        replica = await service.replica(order_id)
        assert replica is not None
        assert (replica["status"], replica["version"]) == ("cancelled", 1)

    async def test_cancelled_before_created_waits_for_the_replica(
        self, service: PaymentsService, probe: Probe
    ) -> None:
        user = random_id()
        created = order_created(user_id=user)
        await probe.publish(order_cancelled(created.id, version=1))
        await asyncio.sleep(0.3)
        assert await service.replica(created.id) is None
        assert await probe.unacked(Subjects.ORDER_CANCELLED) == 1

        await probe.publish(created)

        async def cancelled() -> bool:
            replica = await service.replica(created.id)
            return replica is not None and replica["status"] == "cancelled"

        await eventually(cancelled, what="the late order:cancelled to apply")
        response = await service.pay(created.id, "pm_card_visa", signed_in(user))
        assert errors(response) == [{"message": "Cannot pay for a cancelled order"}]

    async def test_version_gap_is_retried_until_the_gap_is_filled(
        self, service: PaymentsService, probe: Probe
    ) -> None:
        order_id = await seed_order(service, probe, random_id())

        await probe.publish(order_cancelled(order_id, version=2))
        await asyncio.sleep(0.3)

        replica = await service.replica(order_id)
        assert replica is not None and replica["version"] == 0
        assert replica["status"] == "created"
        assert await probe.unacked(Subjects.ORDER_CANCELLED) == 1

        await probe.publish(order_cancelled(order_id, version=1))

        async def at_version_2() -> bool:
            replica = await service.replica(order_id)
            return replica is not None and replica["version"] == 2

        await eventually(at_version_2, what="the held version 2 to apply after version 1")
        await eventually(lambda: _unacked_is(probe, 0), what="the held event to be acked")

    async def test_stale_cancelled_is_acked_without_change(
        self, service: PaymentsService, probe: Probe
    ) -> None:
        order_id = await seed_order(service, probe, random_id())
        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        await probe.publish_and_wait(order_cancelled(order_id, version=1), msg_id="redelivered")

        replica = await service.replica(order_id)
        assert replica is not None and replica["version"] == 1

    async def test_paid_order_that_ends_cancelled_is_refunded(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user, price=19.99)
        assert (await service.pay(order_id, "pm_card_visa", signed_in(user))).status_code == 201
        [intent] = await localstripe.payment_intents()

        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        [refund] = await localstripe.refunds(intent["id"])
        assert refund["amount"] == 1999
        assert refund["status"] == "succeeded"
        payment = await service.payment(order_id)
        assert payment is not None
        assert payment["status"] == PaymentStatus.REFUNDED
        assert payment["refundId"] == refund["id"]

    async def test_redelivered_cancel_of_a_refunded_order_refunds_once(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        await service.pay(order_id, "pm_card_visa", signed_in(user))
        [intent] = await localstripe.payment_intents()
        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        await probe.publish_and_wait(order_cancelled(order_id, version=1), msg_id="redelivered")

        assert len(await localstripe.refunds(intent["id"])) == 1

    async def test_unpaid_cancelled_order_refunds_nothing(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        await service.pay(order_id, "pm_card_chargeCustomerFail", signed_in(user))

        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        [declined] = await localstripe.payment_intents()
        assert await localstripe.refunds(declined["id"]) == []
        assert await service.payment(order_id) is None

    async def test_cancel_during_a_payment_waits_for_it_then_refunds(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                proxy.gate.clear()  # the charge is on its way to Stripe, and stays there
                paying = asyncio.create_task(service.pay(order_id, "pm_card_visa", signed_in(user)))
                await eventually(lambda: proxy.waiting == 1, what="the charge to start")

                await probe.publish(order_cancelled(order_id, version=1))
                await asyncio.sleep(0.5)
                # The listener saw the attempt in flight and keeps the event for later.
                assert await probe.unacked(Subjects.ORDER_CANCELLED) == 1
                assert proxy.requests[-1].path == "/v1/payment_intents"

                proxy.gate.set()
                response = await paying
                assert response.status_code == 201, response.text
                [intent] = await localstripe.payment_intents()

                async def refunded() -> bool:
                    return len(await localstripe.refunds(intent["id"])) == 1

                await eventually(refunded, what="the refund of the raced payment")
                await eventually(
                    lambda: _unacked_is(probe, 0), what="the cancel to be acked at last"
                )
                payment = await service.payment(order_id)
                assert payment is not None and payment["status"] == PaymentStatus.REFUNDED

    async def test_cancel_before_the_claim_is_rechecked_stops_the_payment(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                await probe.publish_and_wait(order_cancelled(order_id, version=1))

                response = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert errors(response) == [{"message": "Cannot pay for a cancelled order"}]
        assert proxy.payment_creations() == []

    async def test_cancel_resolves_an_attempt_whose_answer_was_lost_and_refunds_it(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                proxy.mode = "fail_after"
                lost = await service.pay(order_id, "pm_card_visa", signed_in(user))
                assert lost.status_code == 502
                proxy.mode = "pass"

                await probe.publish_and_wait(order_cancelled(order_id, version=1))

                payment = await service.payment(order_id)

        [intent] = await localstripe.payment_intents()
        assert len(await localstripe.refunds(intent["id"])) == 1
        assert payment is not None
        assert (payment["status"], payment["stripeId"]) == (PaymentStatus.REFUNDED, intent["id"])
        [event] = [m.data for m in await probe.stored(Subjects.PAYMENT_CREATED)]
        assert event["stripeId"] == intent["id"]


async def _unacked_is(probe: Probe, count: int) -> bool:
    return await probe.unacked(Subjects.ORDER_CANCELLED) == count
