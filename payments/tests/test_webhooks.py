"""Stripe's signed webhooks at `POST /api/payments/webhooks/stripe`, as localstripe sends
them: registered with `POST /_config/webhooks/{id}`, signed with the shared secret, about a
second after the change. A relay receives localstripe's deliveries and passes the raw body
and signature to the app under test (which listens on no port), holding them on demand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import stripe
from aiohttp import web

from payments.config import Settings
from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_devstack.servers import free_port
from ticketing_testing import random_id
from ticketing_testing.api import PAYMENTS
from ticketing_testing.checkout import (
    PaymentsService,
    payments_settings,
    running_payments,
    seed_order,
)
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_cancelled
from ticketing_testing.http import errors, signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe, StripeProxy, forward, stripe_proxy

WEBHOOK = f"{PAYMENTS}/webhooks/stripe"
SECRET = "whsec_payments_tests"
# One id for every test: each registration replaces the last test's relay.
WEBHOOK_ID = "payments-tests"
ALREADY_PAID = [{"message": "Order is already paid"}]
INVALID_SIGNATURE = [{"message": "Invalid signature"}]
FAILING_IBAN = "DE62370400440532013001"


@dataclass
class Delivery:
    body: bytes
    signature: str
    status: int | None = None

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def order_id(self) -> str | None:
        metadata = self.event["data"]["object"].get("metadata") or {}
        order_id: str | None = metadata.get("orderId")
        return order_id


@dataclass
class WebhookRelay:
    """localstripe's webhook endpoint; passes each delivery on to `service` while `open`."""

    service: PaymentsService | None = None
    open: asyncio.Event = field(default_factory=asyncio.Event)
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.open.set()

    async def handle(self, request: web.Request) -> web.Response:
        delivery = Delivery(await request.read(), request.headers.get("Stripe-Signature", ""))
        self.deliveries.append(delivery)
        await self.open.wait()
        assert self.service is not None
        response = await post_event(self.service, delivery.body, delivery.signature)
        delivery.status = response.status_code
        return web.Response(status=response.status_code, body=response.content)

    def of(self, event_type: str, order_id: str) -> list[Delivery]:
        return [
            d for d in self.deliveries if d.event["type"] == event_type and d.order_id == order_id
        ]

    async def delivered(self, event_type: str, order_id: str) -> Delivery:
        """The first delivery of `event_type` about the order, once the app answered it."""

        def answered() -> bool:
            return any(d.status is not None for d in self.of(event_type, order_id))

        await eventually(answered, what=f"{event_type} for order {order_id} to be delivered")
        return next(d for d in self.of(event_type, order_id) if d.status is not None)


async def post_event(
    service: PaymentsService, body: bytes, signature: str | None
) -> httpx.Response:
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["stripe-signature"] = signature
    return await service.http.post(WEBHOOK, content=body, headers=headers)


@asynccontextmanager
async def webhook_relay(localstripe: LocalStripe) -> AsyncIterator[WebhookRelay]:
    relay = WebhookRelay()
    app = web.Application()
    app.router.add_post("/", relay.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with httpx.AsyncClient(base_url=localstripe.url) as http:
        registered = await http.post(
            f"/_config/webhooks/{WEBHOOK_ID}",
            data={"url": f"http://127.0.0.1:{port}/", "secret": SECRET},
        )
        registered.raise_for_status()
    try:
        yield relay
    finally:
        relay.open.set()
        await runner.cleanup()


@asynccontextmanager
async def stack(
    jetstream_clean: str, localstripe: LocalStripe, **overrides: Any
) -> AsyncIterator[tuple[PaymentsService, StripeProxy, WebhookRelay]]:
    """The app behind a StripeProxy, with webhooks from localstripe relayed to it."""
    async with stripe_proxy(localstripe.url) as proxy, webhook_relay(localstripe) as relay:
        settings: Settings = payments_settings(
            jetstream_clean, proxy.url, STRIPE_WEBHOOK_SECRET=SECRET, **overrides
        )
        async with running_payments(settings) as service:
            relay.service = service
            yield service, proxy, relay


async def payment_events(probe: Probe, order_id: str) -> list[Any]:
    stored = await probe.stored(Subjects.PAYMENT_CREATED)
    return [m.data for m in stored if m.data["orderId"] == order_id]


@dataclass
class AnswerHolder:
    """Between the app and localstripe: payment creations reach localstripe at once, and
    their answers wait until `release` is set."""

    upstream: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        upstream = await forward(request, self.upstream, await request.read())
        if request.method == "POST" and request.path == "/v1/payment_intents":
            self.held += 1
            await self.release.wait()
        return web.Response(
            status=upstream.status_code, body=upstream.content, content_type="application/json"
        )


@asynccontextmanager
async def answer_holder(upstream: str) -> AsyncIterator[AnswerHolder]:
    holder = AnswerHolder(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", holder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    holder.url = f"http://127.0.0.1:{port}"
    try:
        yield holder
    finally:
        holder.release.set()
        await runner.cleanup()


class TestSucceeded:
    async def test_webhook_after_the_answer_changes_nothing(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, _, relay):
            user = random_id()
            order_id = await seed_order(service, probe, user)
            paid = await service.pay(order_id, "pm_card_visa", signed_in(user))
            assert paid.status_code == 201, paid.text
            before = await service.payment(order_id)

            delivery = await relay.delivered("payment_intent.succeeded", order_id)

            assert delivery.status == 200
            assert await service.payment(order_id) == before
        [event] = await payment_events(probe, order_id)
        assert event["id"] == paid.json()["id"]

    async def test_webhook_before_the_answer_completes_the_payment_once(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with (
            answer_holder(localstripe.url) as holder,
            webhook_relay(localstripe) as relay,
        ):
            settings = payments_settings(jetstream_clean, holder.url, STRIPE_WEBHOOK_SECRET=SECRET)
            async with running_payments(settings) as service:
                relay.service = service
                user = random_id()
                order_id = await seed_order(service, probe, user)
                paying = asyncio.create_task(service.pay(order_id, "pm_card_visa", signed_in(user)))

                delivery = await relay.delivered("payment_intent.succeeded", order_id)
                assert delivery.status == 200
                assert holder.held == 1  # the request is still waiting for its answer
                recorded = await service.payment(order_id)
                assert recorded is not None and recorded["status"] == PaymentStatus.PAID
                holder.release.set()
                response = await paying

        assert response.status_code == 201, response.text
        assert response.json() == {"id": str(recorded["_id"])}
        [intent] = await localstripe.payment_intents()
        [event] = await payment_events(probe, order_id)
        assert event == {"id": str(recorded["_id"]), "orderId": order_id, "stripeId": intent["id"]}

    async def test_webhook_instead_of_the_answer_resolves_the_unknown_claim(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, proxy, relay):
            user = random_id()
            order_id = await seed_order(service, probe, user)
            proxy.mode = "fail_after"  # Stripe charges, the answer is lost
            lost = await service.pay(order_id, "pm_card_visa", signed_in(user))
            assert lost.status_code == 502
            proxy.mode = "pass"

            delivery = await relay.delivered("payment_intent.succeeded", order_id)

            assert delivery.status == 200
            payment = await service.payment(order_id)
            [intent] = await localstripe.payment_intents()
            assert payment is not None
            assert (payment["status"], payment["stripeId"]) == (PaymentStatus.PAID, intent["id"])
            [event] = await payment_events(probe, order_id)
            assert event == {
                "id": str(payment["_id"]),
                "orderId": order_id,
                "stripeId": intent["id"],
            }
            again = await service.pay(order_id, "pm_card_visa", signed_in(user))
            assert errors(again) == ALREADY_PAID
        assert len(proxy.payment_creations()) == 1

    async def test_webhook_for_an_order_cancelled_meanwhile_refunds_the_charge_once(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with (
            answer_holder(localstripe.url) as holder,
            webhook_relay(localstripe) as relay,
        ):
            settings = payments_settings(jetstream_clean, holder.url, STRIPE_WEBHOOK_SECRET=SECRET)
            async with running_payments(settings) as service:
                relay.service = service
                user = random_id()
                order_id = await seed_order(service, probe, user)
                paying = asyncio.create_task(service.pay(order_id, "pm_card_visa", signed_in(user)))
                await eventually(lambda: holder.held == 1, what="the charge to be sent")
                # The order is cancelled while the request waits for Stripe's answer: the
                # listener leaves the attempt in flight alone.
                await probe.publish(order_cancelled(order_id, version=1))

                await relay.delivered("payment_intent.succeeded", order_id)

                [intent] = await localstripe.payment_intents()
                [refund] = await localstripe.refunds(intent["id"])
                assert refund["amount"] == 1999
                holder.release.set()
                await paying
                payment = await service.payment(order_id)

        assert await localstripe.refunds(intent["id"]) == [refund]
        assert payment is not None
        assert (payment["status"], payment["refundId"]) == (PaymentStatus.REFUNDED, refund["id"])


class TestFailed:
    async def test_payment_failed_releases_the_claim(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, _, relay):
            user = random_id()
            order_id = await seed_order(service, probe, user)
            # A debit is `processing` at first and fails half a second later.
            method = await localstripe._call(
                "POST",
                "/v1/payment_methods",
                data={"type": "sepa_debit", "sepa_debit[iban]": FAILING_IBAN},
            )
            pending = await service.pay(order_id, method["id"], signed_in(user))
            assert pending.status_code == 502
            held = await service.payment(order_id)
            assert held is not None and held["status"] == PaymentStatus.UNKNOWN

            delivery = await relay.delivered("payment_intent.payment_failed", order_id)

            assert delivery.status == 200
            assert await service.payment(order_id) is None
            paid = await service.pay(order_id, "pm_card_visa", signed_in(user))
            assert paid.status_code == 201, paid.text
        [event] = await payment_events(probe, order_id)
        assert event["id"] == paid.json()["id"]


class TestSignatures:
    async def test_forged_signature_is_400_and_changes_nothing(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, proxy, relay):
            user = random_id()
            order_id = await seed_order(service, probe, user)
            relay.open.clear()
            proxy.mode = "fail_after"
            assert (await service.pay(order_id, "pm_card_visa", signed_in(user))).status_code == 502
            proxy.mode = "pass"
            await eventually(
                lambda: relay.of("payment_intent.succeeded", order_id) != [],
                what="localstripe to send the event",
            )
            [real] = relay.of("payment_intent.succeeded", order_id)
            forged = stripe.WebhookSignature.generate_signature_header(
                real.body.decode(), "whsec_not_the_secret"
            )
            tampered = real.body.replace(b'"succeeded"', b'"succeeded" ', 1)

            answers = [
                await post_event(service, real.body, forged),
                await post_event(service, real.body, None),
                await post_event(service, real.body, "t=1,v1=deadbeef"),
                await post_event(service, real.body, "garbage"),
                await post_event(service, tampered, real.signature),
            ]

            for answer in answers:
                assert answer.status_code == 400
                assert errors(answer) == INVALID_SIGNATURE
            held = await service.payment(order_id)
            assert held is not None and held["status"] == PaymentStatus.UNKNOWN
            assert await payment_events(probe, order_id) == []
            # The genuine delivery still applies.
            relay.open.set()
            assert (await relay.delivered("payment_intent.succeeded", order_id)).status == 200
            paid = await service.payment(order_id)
            assert paid is not None and paid["status"] == PaymentStatus.PAID

    async def test_replayed_event_changes_nothing(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, proxy, relay):
            user = random_id()
            order_id = await seed_order(service, probe, user)
            proxy.mode = "fail_after"
            assert (await service.pay(order_id, "pm_card_visa", signed_in(user))).status_code == 502
            proxy.mode = "pass"
            delivery = await relay.delivered("payment_intent.succeeded", order_id)
            before = await service.payment(order_id)
            calls = len(proxy.requests)

            replays = await asyncio.gather(
                *(post_event(service, delivery.body, delivery.signature) for _ in range(3))
            )

            assert [r.status_code for r in replays] == [200] * 3
            assert await service.payment(order_id) == before
            assert len(proxy.requests) == calls  # nothing asked of Stripe either
            assert len(await payment_events(probe, order_id)) == 1
            stored = await service.state["stripe_events"].collection.count_documents({})
            assert stored >= 1

    async def test_webhook_needs_no_session_and_answers_400_for_a_missing_body(
        self, jetstream_clean: str, localstripe: LocalStripe
    ) -> None:
        async with stack(jetstream_clean, localstripe) as (service, _, _relay):
            response = await service.http.post(
                WEBHOOK, headers={"content-type": "application/json"}
            )

        assert errors(response) == INVALID_SIGNATURE

    async def test_without_a_configured_secret_every_webhook_is_refused(
        self, service: PaymentsService
    ) -> None:
        body = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"})
        signature = stripe.WebhookSignature.generate_signature_header(body, SECRET)

        response = await post_event(service, body.encode(), signature)

        assert response.status_code == 502
        assert errors(response) == [{"message": "Webhooks are not configured"}]
