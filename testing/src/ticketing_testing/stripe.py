"""localstripe for tests, and a Stripe that misbehaves on demand.

localstripe runs in its own process (`LocalStripe`, a `LocalStripeServer`: loopback, in
memory). `StripeProxy` sits between a service and localstripe when a test needs Stripe to
misbehave: it records each request, can hold or fail them, and plays Stripe's idempotency
(a repeated `Idempotency-Key` gets the first answer), which localstripe itself ignores.
`stripe_list` and `payment_intents_for` read any localstripe (`make dev`'s) synchronously.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from ticketing_devstack.plan import DEV_STRIPE_KEY
from ticketing_devstack.servers import LocalStripeServer, free_port

# The secret key the payments tests give the service (any `sk_test_...` suits localstripe).
TEST_STRIPE_KEY = "sk_test_payments"


# localstripe ---------------------------------------------------------------------------


class LocalStripe(LocalStripeServer):
    """A localstripe process on a free port, and what tests ask it directly (with `key`,
    the one the service under test is given)."""

    key = TEST_STRIPE_KEY

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, auth=(self.key, "")) as http:
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


# The headers the stripe library's calls depend on; the rest are the hop's own.
FORWARDED_HEADERS = {"authorization", "content-type", "stripe-version"}


async def forward(request: web.Request, upstream: str, body: bytes) -> httpx.Response:
    """`request` (with `body`, already read) sent on to the Stripe API at `upstream`."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
    async with httpx.AsyncClient() as http:
        return await http.request(
            request.method, upstream + request.path_qs, headers=headers, content=body
        )


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
        upstream = await forward(request, self.upstream, body)
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


# Reading a running localstripe ---------------------------------------------------------


def stripe_list(
    localstripe_url: str, resource: str, key: str = DEV_STRIPE_KEY
) -> list[dict[str, Any]]:
    """Every object of a localstripe list endpoint (`payment_intents`, `charges`), paged;
    `key` is `make dev`'s unless given."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 100}
    while True:
        response = httpx.get(
            f"{localstripe_url}/v1/{resource}",
            params=params,
            auth=(key, ""),
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["starting_after"] = page["data"][-1]["id"]


def payment_intents_for(
    localstripe_url: str, order_id: str, key: str = DEV_STRIPE_KEY
) -> list[dict[str, Any]]:
    """The PaymentIntents payments created for the order (it tags them `metadata.orderId`)."""
    return [
        intent
        for intent in stripe_list(localstripe_url, "payment_intents", key)
        if (intent.get("metadata") or {}).get("orderId") == order_id
    ]
