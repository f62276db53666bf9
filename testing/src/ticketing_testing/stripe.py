"""Helpers of the payments tests: a real localstripe, a running app, the real stream.

localstripe runs in its own process (`LocalStripeServer`: loopback, in memory). `StripeProxy` sits
between the service and localstripe when a test needs Stripe to misbehave: it records
each request, can hold or fail them, and plays Stripe's idempotency (a repeated
`Idempotency-Key` gets the first answer), which localstripe itself ignores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from aiohttp import web
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient, Response

from payments.app import create_app
from payments.config import Settings
from payments.repository import OrderReplicas, Payments
from ticketing_common.events import OrderCancelledEvent, OrderCreatedEvent
from ticketing_common.mongo import Document, MongoConnector, connect_mongo, utcnow
from ticketing_common.testing import free_port, random_id
from ticketing_common.testing.app import service_settings
from ticketing_common.testing.servers import LocalStripeServer
from ticketing_common.testing.stream import Probe

PAYMENTS = "/api/payments"
STRIPE_KEY = "sk_test_payments"


# localstripe ---------------------------------------------------------------------------


class LocalStripe(LocalStripeServer):
    """A localstripe process on a free port, and what tests ask it directly."""

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, auth=(STRIPE_KEY, "")) as http:
            response = await http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    async def clear(self) -> None:
        await self._call("DELETE", "/_config/data")

    async def card_token(self, number: str = "4242424242424242") -> dict[str, Any]:
        """What Stripe.js `createToken` gives the browser for a card."""
        card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
        token: dict[str, Any] = await self._call(
            "POST", "/v1/tokens", data={f"card[{key}]": value for key, value in card.items()}
        )
        return token

    async def payment_intents(self) -> list[dict[str, Any]]:
        listed = await self._call("GET", "/v1/payment_intents", params={"limit": 100})
        intents: list[dict[str, Any]] = listed["data"]
        return intents

    async def succeeded_intents(self) -> list[dict[str, Any]]:
        return [pi for pi in await self.payment_intents() if pi["status"] == "succeeded"]

    async def refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        listed = await self._call(
            "GET", "/v1/refunds", params={"payment_intent": payment_intent, "limit": 100}
        )
        refunds: list[dict[str, Any]] = listed["data"]
        return refunds


# A Stripe that misbehaves on demand ----------------------------------------------------


@dataclass
class ProxiedRequest:
    method: str
    path: str
    idempotency_key: str | None
    form: dict[str, str]


@dataclass
class StripeProxy:
    """Forwards to localstripe. `mode`: "pass"; "fail_after" (forward, then answer 500,
    as when Stripe charged and the answer was lost); "fail_before" (answer 500 without
    forwarding). While `gate` is clear, payment creations wait before being forwarded."""

    upstream: str
    mode: str = "pass"
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[ProxiedRequest] = field(default_factory=list)
    waiting: int = 0
    # When set, payment creations get this (status, Stripe error body) without forwarding.
    refusal: tuple[int, dict[str, Any]] | None = None
    _answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(ProxiedRequest(request.method, request.path, key, form))
        if key is not None and key in self._answers:
            status, cached = self._answers[key]
            return web.Response(status=status, body=cached, content_type="application/json")
        if request.method == "POST" and request.path == "/v1/payment_intents":
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        if self.refusal is not None and request.path == "/v1/payment_intents":
            status, error = self.refusal
            return web.json_response(error, status=status)
        if self.mode == "fail_before":
            return self._failure()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in {"authorization", "content-type", "stripe-version"}
        }
        async with httpx.AsyncClient() as http:
            upstream = await http.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                content=body,
            )
        if key is not None:
            self._answers[key] = (upstream.status_code, upstream.content)
        if self.mode == "fail_after":
            return self._failure()
        return web.Response(
            status=upstream.status_code, body=upstream.content, content_type="application/json"
        )

    @staticmethod
    def _failure() -> web.Response:
        error = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        return web.json_response(error, status=500)

    def payment_creations(self) -> list[ProxiedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/payment_intents"]


@asynccontextmanager
async def stripe_proxy(upstream: str) -> AsyncIterator[StripeProxy]:
    proxy = StripeProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        proxy.gate.set()
        await runner.cleanup()


# The service ---------------------------------------------------------------------------


def payments_settings(nats_url: str, stripe_base: str, **overrides: Any) -> Settings:
    return service_settings(
        Settings,
        nats_url,
        STRIPE_KEY=STRIPE_KEY,
        STRIPE_API_BASE=stripe_base,
        STRIPE_TIMEOUT_SECONDS=5.0,
        PAYMENT_CLAIM_TIMEOUT_SECONDS=30.0,
        **overrides,
    )


@dataclass
class Service:
    """A running payments app: its HTTP client and its lifespan state."""

    http: AsyncClient
    state: dict[str, Any]

    @property
    def orders(self) -> OrderReplicas:
        orders: OrderReplicas = self.state["orders"]
        return orders

    @property
    def payments(self) -> Payments:
        payments: Payments = self.state["payments"]
        return payments

    async def pay(self, order_id: str, token: str, session: dict[str, str]) -> Response:
        """POST a payment with `session` headers (`signed_in(user)`)."""
        return await self.post({"token": token, "orderId": order_id}, session)

    async def post(self, body: Any, session: dict[str, str] | None = None) -> Response:
        return await self.http.post(PAYMENTS, json=body, headers=session)

    async def replica(self, order_id: str) -> Document | None:
        return await self.orders.get(order_id)

    async def payment(self, order_id: str) -> Document | None:
        return await self.payments.for_order(order_id)


@asynccontextmanager
async def running_service(
    settings: Settings, connect: MongoConnector = connect_mongo
) -> AsyncIterator[Service]:
    app = create_app(settings, connect=connect)
    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="http://test") as http,
    ):
        yield Service(http=http, state=manager._state)


# Events --------------------------------------------------------------------------------


def order_created(
    user_id: str,
    price: Any = "19.99",
    order_id: str | None = None,
    expires_at: datetime | None = None,
    version: int = 0,
) -> OrderCreatedEvent:
    return OrderCreatedEvent.model_validate(
        {
            "id": order_id or random_id(),
            "version": version,
            "status": "created",
            "userId": user_id,
            "expiresAt": (expires_at or utcnow() + timedelta(minutes=15)).isoformat(),
            "ticket": {"id": random_id(), "price": price},
        }
    )


def order_cancelled(order_id: str, version: int = 1) -> OrderCancelledEvent:
    return OrderCancelledEvent.model_validate(
        {"id": order_id, "version": version, "ticket": {"id": random_id()}}
    )


async def seed_order(
    service: Service,
    probe: Probe,
    user_id: str,
    price: Any = "19.99",
    expires_at: datetime | None = None,
) -> str:
    """Publish `order:created` as orders would and wait for the replica."""
    event = order_created(user_id, price=price, expires_at=expires_at)
    await probe.publish_and_wait(event)
    assert await service.replica(event.id) is not None
    return event.id
