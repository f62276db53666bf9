"""A PaymentIntent that did not answer `succeeded` is not "declined": the claim is released
only once the intent is `canceled`; Stripe refusing the cancel means the intent moved on, and
`processing` may still charge (docs/SPEC.md §3, step 5). Stripe's answers are faked by a
proxy in front of localstripe that reports another status for the created intent than the
one it has, as Stripe does while a charge settles."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from payments.models import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_devstack.servers import free_port
from ticketing_testing import random_id
from ticketing_testing.checkout import payments_settings, running_payments, seed_order
from ticketing_testing.http import errors, signed_in
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import LocalStripe, forward


@dataclass
class SettlingStripe:
    """Forwards to localstripe; a created intent's answer says `create_status` instead."""

    upstream: str
    create_status: str
    paths: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(f"{request.method} {request.path}")
        upstream = await forward(request, self.upstream, await request.read())
        body = upstream.content
        if request.method == "POST" and request.path == "/v1/payment_intents":
            answer: dict[str, Any] = upstream.json()
            body = json.dumps({**answer, "status": self.create_status}).encode()
        return web.Response(status=upstream.status_code, body=body, content_type="application/json")


@asynccontextmanager
async def settling_stripe(upstream: str, create_status: str) -> AsyncIterator[SettlingStripe]:
    proxy = SettlingStripe(upstream, create_status)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


class TestUnsettledIntents:
    async def test_processing_intent_keeps_the_claim_and_is_never_charged_twice(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        # Stripe answers `processing`; the charge goes through afterwards.
        async with settling_stripe(localstripe.url, "processing") as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)

                first = await service.pay(order_id, "pm_card_visa", signed_in(user))

                assert first.status_code == 502, first.text
                held = await service.payment(order_id)
                assert held is not None
                assert held["status"] == PaymentStatus.UNKNOWN
                [intent] = await localstripe.payment_intents()
                assert held["stripeId"] == intent["id"]
                # The buyer tries again: the kept attempt turns out charged.
                second = await service.pay(order_id, "pm_card_visa", signed_in(user))
                paid = await service.payment(order_id)

        assert errors(second) == [{"message": "Order is already paid"}]
        assert len(await localstripe.payment_intents()) == 1
        assert paid is not None and paid["status"] == PaymentStatus.PAID
        [event] = [m.data for m in await probe.stored(Subjects.PAYMENT_CREATED)]
        assert event["stripeId"] == intent["id"]

    async def test_refused_cancel_is_not_read_as_a_decline(
        self, jetstream_clean: str, probe: Probe, localstripe: LocalStripe
    ) -> None:
        # Stripe answers `requires_confirmation`; by the time it is cancelled it has
        # succeeded, so the cancel is refused (an InvalidRequestError).
        async with settling_stripe(localstripe.url, "requires_confirmation") as proxy:
            settings = payments_settings(jetstream_clean, proxy.url)
            async with running_payments(settings) as service:
                user = random_id()
                order_id = await seed_order(service, probe, user)

                response = await service.pay(order_id, "pm_card_visa", signed_in(user))
                payment = await service.payment(order_id)

        assert response.status_code == 201, response.text
        assert any(path.endswith("/cancel") for path in proxy.paths)
        [intent] = await localstripe.payment_intents()
        assert intent["status"] == "succeeded"
        assert payment is not None
        assert (payment["status"], payment["stripeId"]) == (PaymentStatus.PAID, intent["id"])
