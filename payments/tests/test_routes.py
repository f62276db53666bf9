import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from payments.config import Settings
from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_common.mongo import utcnow
from ticketing_devstack.servers import free_port
from ticketing_testing import random_id
from ticketing_testing.api import PAYMENTS
from ticketing_testing.checkout import (
    PaymentsService,
    payments_settings,
    running_payments,
    seed_order,
)
from ticketing_testing.database import connect_yielding
from ticketing_testing.factories import order_cancelled, order_created
from ticketing_testing.http import errors, fields, signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import TEST_STRIPE_KEY, LocalStripe, stripe_proxy

DECLINED = "Your card was declined."
ALREADY_PAID = [{"message": "Order is already paid"}]
UNAVAILABLE = [{"message": "Payment provider unavailable"}]


async def age_claim(service: PaymentsService, order_id: str) -> None:
    """Make the order's claim look as old as an abandoned one."""
    timeout: float = service.state["settings"].PAYMENT_CLAIM_TIMEOUT_SECONDS
    claimed_at = utcnow() - timedelta(seconds=timeout + 1)
    await service.payments.collection.update_one(
        {"orderId": order_id}, {"$set": {"claimedAt": claimed_at}}
    )


async def payment_events(probe: Probe) -> list[Any]:
    return [message.data for message in await probe.stored(Subjects.PAYMENT_CREATED)]


class TestCreatePayment:
    async def test_payment_charges_the_exact_amount_in_cents(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user, price=19.99)

        response = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert response.status_code == 201, response.text
        payment_id = response.json()["id"]
        assert response.json() == {"id": payment_id}
        [intent] = await localstripe.payment_intents()
        assert intent["amount"] == 1999
        assert intent["currency"] == "usd"
        assert intent["status"] == "succeeded"
        stored = await service.payment(order_id)
        assert stored is not None
        assert intent["metadata"] == {"orderId": order_id, "claimId": stored["claimId"]}
        assert stored["status"] == PaymentStatus.PAID
        assert (stored["stripeId"], stored["amount"]) == (intent["id"], 1999)
        assert str(stored["_id"]) == payment_id

    @pytest.mark.parametrize(
        ("price", "amount"), [("0.57", 57), (1.1, 110), ("999999.99", 99999999), (20, 2000)]
    )
    async def test_amount_is_exact_for_prices_floats_get_wrong(
        self,
        service: PaymentsService,
        probe: Probe,
        localstripe: LocalStripe,
        price: Any,
        amount: int,
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user, price=price)

        assert (await service.pay(order_id, "pm_card_visa", signed_in(user))).status_code == 201

        [intent] = await localstripe.payment_intents()
        assert intent["amount"] == amount

    async def test_payment_created_is_published_once_with_its_payload(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)

        payment_id = (await service.pay(order_id, "pm_card_visa", signed_in(user))).json()["id"]

        [intent] = await localstripe.payment_intents()
        [message] = await probe.stored(Subjects.PAYMENT_CREATED)
        assert message.data == {"id": payment_id, "orderId": order_id, "stripeId": intent["id"]}
        assert message.msg_id == f"payment:created:{payment_id}"
        # Published and cleared from the outbox: the re-publisher adds nothing later.
        await asyncio.sleep(0.5)
        assert len(await payment_events(probe)) == 1

    async def test_card_token_from_stripe_js_pays_with_its_card(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        token = await localstripe.card_token("4242424242424242")

        response = await service.pay(order_id, token["id"], signed_in(user))

        assert response.status_code == 201, response.text
        [intent] = await localstripe.payment_intents()
        assert intent["payment_method"] == token["card"]["id"]
        assert intent["status"] == "succeeded"

    async def test_card_id_pays(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        card_id = (await localstripe.card_token())["card"]["id"]

        assert (await service.pay(order_id, card_id, signed_in(user))).status_code == 201

        [intent] = await localstripe.succeeded_intents()
        assert intent["payment_method"] == card_id

    async def test_declined_card_is_400_with_stripes_message_and_records_nothing(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)

        response = await service.pay(order_id, "pm_card_chargeCustomerFail", signed_in(user))

        assert response.status_code == 400
        assert errors(response) == [{"message": DECLINED}]
        assert await service.payment(order_id) is None
        assert await payment_events(probe) == []

    async def test_declined_token_card_is_400(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        token = await localstripe.card_token("4000000000000341")

        response = await service.pay(order_id, token["id"], signed_in(user))

        assert response.status_code == 400
        assert errors(response) == [{"message": DECLINED}]

    async def test_order_stays_payable_after_a_decline(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        declined = await service.pay(order_id, "pm_card_chargeCustomerFail", signed_in(user))
        assert declined.status_code == 400

        retried = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert retried.status_code == 201, retried.text
        [intent] = await localstripe.succeeded_intents()
        [event] = await payment_events(probe)
        assert event == {"id": retried.json()["id"], "orderId": order_id, "stripeId": intent["id"]}

    async def test_unknown_token_is_400_with_field_and_records_nothing(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)

        for token in ("tok_doesnotexist", "pm_doesnotexist"):
            response = await service.pay(order_id, token, signed_in(user))
            assert response.status_code == 400, token
            assert fields(response) == ["token"]
        assert await service.payment(order_id) is None
        assert await localstripe.succeeded_intents() == []

    async def test_paid_order_is_400_already_paid(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        assert (await service.pay(order_id, "pm_card_visa", signed_in(user))).status_code == 201

        again = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert again.status_code == 400
        assert errors(again) == ALREADY_PAID
        assert len(await localstripe.payment_intents()) == 1

    async def test_trailing_slash_answers_the_same(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)

        response = await service.http.post(
            PAYMENTS + "/",
            json={"token": "pm_card_visa", "orderId": order_id},
            headers=signed_in(user),
        )

        assert response.status_code == 201


class TestConcurrentPayments:
    async def test_ten_concurrent_requests_give_one_201_and_one_payment_intent(
        self, settings: Settings, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with running_payments(settings, connect_yielding) as service:
            user = random_id()
            order_id = await seed_order(service, probe, user)

            responses = await asyncio.gather(
                *(service.pay(order_id, "pm_card_visa", signed_in(user)) for _ in range(10))
            )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201] + [400] * 9
        losers = [errors(r) for r in responses if r.status_code == 400]
        assert all(body == ALREADY_PAID for body in losers)
        assert len(await localstripe.payment_intents()) == 1
        assert len(await payment_events(probe)) == 1

    async def test_concurrent_token_payments_retrieve_and_charge_once(
        self, settings: Settings, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with running_payments(settings, connect_yielding) as service:
            user = random_id()
            order_id = await seed_order(service, probe, user)
            tokens = [(await localstripe.card_token())["id"] for _ in range(5)]

            responses = await asyncio.gather(
                *(service.pay(order_id, token, signed_in(user)) for token in tokens)
            )

        assert sorted(r.status_code for r in responses) == [201] + [400] * 4
        assert len(await localstripe.payment_intents()) == 1


class TestIdempotency:
    async def test_each_attempt_sends_a_key_naming_the_order_and_the_attempt(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                declined = await service.pay(
                    order_id, "pm_card_chargeCustomerFail", signed_in(user)
                )
                paid = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert (declined.status_code, paid.status_code) == (400, 201)
        first, second = proxy.payment_creations()
        assert first.idempotency_key is not None and second.idempotency_key is not None
        prefix = f"pay:{order_id}:"
        assert first.idempotency_key.startswith(prefix)
        assert second.idempotency_key.startswith(prefix)
        # A declined attempt releases its claim: the retry is a new attempt, a new key.
        assert first.idempotency_key != second.idempotency_key
        assert second.form["amount"] == "1999"
        assert second.form["currency"] == "usd"
        assert second.form["payment_method"] == "pm_card_visa"
        assert second.form["payment_method_types[0]"] == "card"
        assert second.form["confirm"] == "true"
        assert second.form["metadata[orderId]"] == order_id


class TestProviderOutage:
    async def test_unreachable_stripe_is_502_and_records_nothing(
        self, jetstream_clean: str, probe: Probe
    ) -> None:
        settings = payments_settings(jetstream_clean, f"http://127.0.0.1:{free_port()}")
        async with running_payments(settings) as service:
            user = random_id()
            order_id = await seed_order(service, probe, user)

            for token in ("pm_card_visa", "tok_visa"):
                response = await service.pay(order_id, token, signed_in(user))
                assert response.status_code == 502, token
                assert errors(response) == UNAVAILABLE
            assert await service.payment(order_id) is None
        assert await payment_events(probe) == []

    async def test_lost_answer_is_502_then_the_replayed_attempt_does_not_charge_twice(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                proxy.mode = "fail_after"  # Stripe charges, the answer is lost

                lost = await service.pay(order_id, "pm_card_visa", signed_in(user))

                assert lost.status_code == 502
                assert errors(lost) == UNAVAILABLE
                held = await service.payment(order_id)
                assert held is not None and held["status"] == PaymentStatus.UNKNOWN
                assert await payment_events(probe) == []
                # While the outcome is unknown, another card cannot start a second charge.
                proxy.mode = "pass"
                retried = await service.pay(order_id, "pm_card_visa", signed_in(user))
                again = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert errors(retried) == ALREADY_PAID
        assert errors(again) == ALREADY_PAID
        [intent] = await localstripe.payment_intents()
        first, replay = proxy.payment_creations()
        assert first.idempotency_key == replay.idempotency_key
        [event] = await payment_events(probe)
        assert event["stripeId"] == intent["id"]

    async def test_failure_before_charging_is_502_then_the_user_can_pay(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                proxy.mode = "fail_before"

                failed = await service.pay(order_id, "pm_card_chargeCustomerFail", signed_in(user))

                assert failed.status_code == 502
                proxy.mode = "pass"
                # The replay of the failed attempt declines, so this request pays anew.
                paid = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert paid.status_code == 201, paid.text
        [intent] = await localstripe.succeeded_intents()
        assert intent["payment_method"] == "pm_card_visa"
        keys = [r.idempotency_key for r in proxy.payment_creations()]
        assert len(keys) == 3 and keys[0] == keys[1] != keys[2]


class TestPaymentRules:
    async def test_signed_out_is_401(self, service: PaymentsService, probe: Probe) -> None:
        order_id = await seed_order(service, probe, random_id())

        response = await service.post({"token": "pm_card_visa", "orderId": order_id})

        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    @pytest.mark.parametrize("body", [{}, {"token": 5}, [], "text"])
    async def test_signed_out_is_401_before_the_body_is_validated(
        self, service: PaymentsService, body: Any
    ) -> None:
        response = await service.post(body)

        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_missing_fields_are_400_one_entry_each(self, service: PaymentsService) -> None:
        response = await service.post({}, signed_in())

        assert response.status_code == 400
        assert fields(response) == ["orderId", "token"]

    async def test_empty_fields_are_400_one_entry_each(self, service: PaymentsService) -> None:
        response = await service.post({"token": " ", "orderId": ""}, signed_in())

        assert response.status_code == 400
        assert errors(response) == [
            {"message": "Token is required", "field": "token"},
            {"message": "Order id is required", "field": "orderId"},
        ]

    @pytest.mark.parametrize(
        "body",
        [
            {"token": 5, "orderId": ["x"]},
            {"token": None, "orderId": None},
            {"token": {"id": "tok_x"}, "orderId": 123},
            {"token": True, "orderId": False},
        ],
    )
    async def test_wrong_types_are_400_with_fields(
        self, service: PaymentsService, body: Any
    ) -> None:
        response = await service.post(body, signed_in())

        assert response.status_code == 400
        assert fields(response) == ["orderId", "token"]

    @pytest.mark.parametrize("token", ["abc", "sk_test_123", "src_123", "TOK_123", "tok"])
    async def test_token_without_a_stripe_prefix_is_400_with_field(
        self, service: PaymentsService, token: str
    ) -> None:
        response = await service.post({"token": token, "orderId": random_id()}, signed_in())

        assert response.status_code == 400
        assert fields(response) == ["token"]

    @pytest.mark.parametrize("prefix", ["tok_", "card_", "pm_"])
    async def test_token_longer_than_a_stripe_id_is_400_with_field_and_not_sent(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe, prefix: str
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        token = prefix + "a" * 20000

        response = await service.pay(order_id, token, signed_in(user))

        assert response.status_code == 400
        assert errors(response) == [
            {"message": "Token must be at most 255 characters", "field": "token"}
        ]
        assert await localstripe.payment_intents() == []
        assert await service.payment(order_id) is None

    @pytest.mark.parametrize(
        "order_id", ["123", "z" * 24, "6B104E028BF499AA1DB08996", "6b104e028bf499aa1db089970"]
    )
    async def test_order_id_that_is_not_an_object_id_is_400_with_field(
        self, service: PaymentsService, order_id: str
    ) -> None:
        response = await service.post({"token": "pm_card_visa", "orderId": order_id}, signed_in())

        assert response.status_code == 400
        assert errors(response) == [{"message": "Order id must be a valid id", "field": "orderId"}]

    async def test_snake_case_order_id_is_not_accepted(self, service: PaymentsService) -> None:
        response = await service.post(
            {"token": "pm_card_visa", "order_id": random_id()}, signed_in()
        )

        assert response.status_code == 400
        assert fields(response) == ["orderId"]

    async def test_malformed_json_is_400_without_field(self, service: PaymentsService) -> None:
        response = await service.http.post(
            PAYMENTS,
            content=b'{"token": "pm_card_visa", ',
            headers={"content-type": "application/json", **signed_in()},
        )

        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body is not valid JSON"}]

    @pytest.mark.parametrize("body", [[], "text", 3, None, ["pm_card_visa"]])
    async def test_body_that_is_not_an_object_is_400_without_field(
        self, service: PaymentsService, body: Any
    ) -> None:
        response = await service.post(body, signed_in())

        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body must be a JSON object"}]

    async def test_payment_sent_while_the_orders_event_is_on_its_way_waits_for_it(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        # orders' 201 can reach the buyer before payments has the order.
        user_id = random_id()
        event = order_created(user_id=user_id, price="19.99")
        paying = asyncio.create_task(service.pay(event.id, "pm_card_visa", signed_in(user_id)))
        await asyncio.sleep(0.05)
        assert not paying.done()
        await probe.publish(event)
        response = await paying
        assert response.status_code == 201, response.text
        assert (await service.payment(event.id) or {}).get("status") == PaymentStatus.PAID

    async def test_unknown_order_is_404(self, service: PaymentsService) -> None:
        response = await service.pay(random_id(), "pm_card_visa", signed_in())

        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    async def test_someone_elses_order_is_401(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        order_id = await seed_order(service, probe, random_id())

        response = await service.pay(order_id, "pm_card_visa", signed_in(random_id()))

        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]
        assert await localstripe.payment_intents() == []

    async def test_cancelled_order_is_400(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        response = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert response.status_code == 400
        assert errors(response) == [{"message": "Cannot pay for a cancelled order"}]
        assert await localstripe.payment_intents() == []

    async def test_order_past_its_expiry_is_400(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(
            service, probe, user, expires_at=utcnow() - timedelta(seconds=1)
        )

        response = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert response.status_code == 400
        assert errors(response) == [{"message": "Order has expired"}]
        assert await localstripe.payment_intents() == []

    async def test_rules_answer_in_order_of_the_spec(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        owner = random_id()
        order_id = await seed_order(service, probe, owner, expires_at=utcnow() - timedelta(1))
        await probe.publish_and_wait(order_cancelled(order_id, version=1))

        # A bad token outranks everything about the order; not the owner outranks its state.
        bad_token = await service.pay(order_id, "nope", signed_in(owner))
        other_user = await service.pay(order_id, "pm_card_visa", signed_in(random_id()))
        cancelled_and_expired = await service.pay(order_id, "pm_card_visa", signed_in(owner))

        assert fields(bad_token) == ["token"]
        assert other_user.status_code == 401
        assert errors(cancelled_and_expired) == [{"message": "Cannot pay for a cancelled order"}]


class TestHealth:
    async def test_health_and_readiness(self, service: PaymentsService) -> None:
        assert (await service.http.get("/healthz")).status_code == 200
        ready = await service.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "events": True}

    async def test_wrong_method_is_405(self, service: PaymentsService) -> None:
        response = await service.http.get(PAYMENTS)
        assert response.status_code == 405
        assert errors(response) == [{"message": "Method not allowed"}]


class TestRefusedAmount:
    async def test_amount_stripe_refuses_is_400_with_its_message_and_order_stays_payable(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        message = "Amount must be at least $0.50 usd"
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user, price="0.10")
                error = {"type": "invalid_request_error", "param": "amount", "message": message}
                proxy.refusal = (400, {"error": {**error, "code": "amount_too_small"}})

                refused = await service.pay(order_id, "pm_card_visa", signed_in(user))

                assert refused.status_code == 400
                assert errors(refused) == [{"message": message}]
                assert await service.payment(order_id) is None
                proxy.refusal = None
                paid = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert paid.status_code == 201
        [intent] = await localstripe.payment_intents()
        assert intent["amount"] == 10


class TestInterruptedAttempts:
    async def test_order_cancelled_between_check_and_claim_is_400_and_not_charged(
        self,
        service: PaymentsService,
        probe: Probe,
        localstripe: LocalStripe,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        replicas = service.orders
        read = replicas.get
        reads = 0

        async def read_then_cancel(order: str) -> Any:
            # The order:cancelled listener's write lands right after the route's first
            # look at the order, before its claim.
            nonlocal reads
            found = await read(order)
            reads += 1
            if reads == 1:
                await replicas.apply_cancelled(order, 1)
            return found

        monkeypatch.setattr(replicas, "get", read_then_cancel)
        response = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert errors(response) == [{"message": "Cannot pay for a cancelled order"}]
        assert reads == 2
        assert await localstripe.payment_intents() == []
        assert await service.payment(order_id) is None

    async def test_claim_of_a_request_that_died_before_charging_is_freed_after_the_timeout(
        self, service: PaymentsService, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user)
        assert await service.payments.claim(order_id, user) is not None

        while_held = await service.pay(order_id, "pm_card_visa", signed_in(user))
        await age_claim(service, order_id)
        after_timeout = await service.pay(order_id, "pm_card_visa", signed_in(user))

        assert errors(while_held) == ALREADY_PAID
        assert after_timeout.status_code == 201, after_timeout.text
        assert len(await localstripe.payment_intents()) == 1

    async def test_attempt_of_a_request_that_died_while_charging_is_replayed_not_repeated(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stripe_proxy(localstripe.url) as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)
                # A request claimed, recorded its attempt, sent it to Stripe (which
                # charged), and died before recording the outcome.
                claim = await service.payments.claim(order_id, user)
                assert claim is not None
                await service.payments.record_attempt(claim, "pm_card_visa", 1999)
                key = f"pay:{order_id}:{claim.claim_id}"
                async with httpx.AsyncClient(auth=(TEST_STRIPE_KEY, "")) as stripe_http:
                    sent = await stripe_http.post(
                        proxy.url + "/v1/payment_intents",
                        headers={"Idempotency-Key": key},
                        data={
                            "amount": "1999",
                            "currency": "usd",
                            "payment_method": "pm_card_visa",
                            "payment_method_types[0]": "card",
                            "confirm": "true",
                            "metadata[orderId]": order_id,
                        },
                    )
                assert sent.status_code == 200
                await age_claim(service, order_id)

                response = await service.pay(order_id, "pm_card_visa", signed_in(user))
                payment = await service.payment(order_id)

        assert errors(response) == ALREADY_PAID
        [intent] = await localstripe.payment_intents()
        assert payment is not None
        assert (payment["status"], payment["stripeId"]) == (PaymentStatus.PAID, intent["id"])
        assert [r.idempotency_key for r in proxy.payment_creations()] == [key, key]
        [event] = await payment_events(probe)
        assert event == {"id": claim.id, "orderId": order_id, "stripeId": intent["id"]}
