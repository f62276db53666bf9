"""The payments service under test: its settings against a Stripe stand-in, the app running
with its repositories at hand, and orders replicated into it through the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bson import ObjectId
from httpx import Response

from payments.app import create_app
from payments.config import Settings
from payments.repository import OrderReplicas, Payments
from ticketing_common.mongo import Document, MongoConnector, connect_mongo
from ticketing_testing.api import PAYMENTS
from ticketing_testing.factories import order_created
from ticketing_testing.services import RunningService, running_service, service_settings
from ticketing_testing.stream import Probe
from ticketing_testing.stripe import TEST_STRIPE_KEY


def payments_settings(nats_url: str, stripe_base: str, **overrides: Any) -> Settings:
    """Test-scale payments settings, paying through the Stripe API at `stripe_base`."""
    return service_settings(
        Settings,
        nats_url,
        STRIPE_KEY=TEST_STRIPE_KEY,
        STRIPE_API_BASE=stripe_base,
        STRIPE_TIMEOUT_SECONDS=5.0,
        PAYMENT_CLAIM_TIMEOUT_SECONDS=30.0,
        **overrides,
    )


class PaymentsService(RunningService):
    """A running payments app: requests to it, and its repositories."""

    @property
    def orders(self) -> OrderReplicas:
        return self.get("orders", OrderReplicas)

    @property
    def payments(self) -> Payments:
        return self.get("payments", Payments)

    async def pay(self, order_id: str, token: str, session: dict[str, str]) -> Response:
        """POST a payment with `session` headers (`signed_in(user)`)."""
        return await self.post({"token": token, "orderId": order_id}, session)

    async def post(self, body: Any, session: dict[str, str] | None = None) -> Response:
        # Always JSON: json=None sends no body, and no Content-Type would be a 415.
        headers = {"content-type": "application/json", **(session or {})}
        return await self.http.post(PAYMENTS, json=body, headers=headers)

    async def replica(self, order_id: str) -> Document | None:
        """The order's replica as stored."""
        doc: Document | None = await self.orders.collection.find_one({"_id": ObjectId(order_id)})
        return doc

    async def payment(self, order_id: str) -> Document | None:
        """The order's payment (or claim) as stored."""
        doc: Document | None = await self.payments.collection.find_one({"orderId": order_id})
        return doc


@asynccontextmanager
async def running_payments(
    settings: Settings, connect: MongoConnector = connect_mongo
) -> AsyncIterator[PaymentsService]:
    """The payments app on `settings` (its database opened by `connect`), running."""
    async with running_service(create_app(settings, connect=connect)) as running:
        yield PaymentsService(running.http, running.state)


async def seed_order(
    service: PaymentsService,
    probe: Probe,
    user_id: str,
    price: Any = "19.99",
    expires_at: datetime | None = None,
) -> str:
    """Publish `order:created` as orders would and wait for the replica; the order id."""
    event = order_created(user_id=user_id, price=price, expires_at=expires_at)
    await probe.publish_and_wait(event)
    assert await service.replica(event.id) is not None
    return event.id
