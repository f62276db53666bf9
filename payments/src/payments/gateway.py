"""Stripe, through the official library's `StripeClient` and its async calls.

Stripe's answers are sorted into what the checkout needs to know:
`PaymentDeclined` (Stripe refused; nothing was charged) and `ProviderUnavailable`
(Stripe did not answer usefully; `maybe_charged` says whether the request may have been
carried out, in which case only a replay with the same idempotency key tells).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

logger = logging.getLogger("payments.stripe")

# An InvalidRequestError about one of these parameters is about the client's card token.
_TOKEN_PARAMS = {"payment_method", "source", "card", "token"}


class PaymentDeclined(Exception):
    """Stripe refused the payment (declined card, unknown card, amount refused)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ProviderUnavailable(Exception):
    """Stripe unreachable or failing."""

    def __init__(self, detail: str, *, maybe_charged: bool) -> None:
        super().__init__(detail)
        self.maybe_charged = maybe_charged


def _never_sent(exc: stripe.APIConnectionError) -> bool:
    # The connection was refused or never opened: Stripe cannot have seen the request.
    return isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def translate(exc: stripe.StripeError, *, charging: bool) -> Exception:
    """Our view of a Stripe failure. `charging`: the failed call was the payment itself."""
    message = exc.user_message or str(exc) or "Payment failed"
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(message)
    if isinstance(exc, stripe.IdempotencyError):
        # Only a replay can meet one, and a replay sends the same parameters: something
        # else is going on; keep the claim until someone looks.
        return ProviderUnavailable(f"idempotency error: {exc!r}", maybe_charged=charging)
    if isinstance(exc, stripe.InvalidRequestError):
        field = "token" if exc.http_status == 404 or exc.param in _TOKEN_PARAMS else None
        return PaymentDeclined(message, field)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        logger.error("Stripe refused our key: %r", exc)
        return ProviderUnavailable(repr(exc), maybe_charged=False)
    if isinstance(exc, stripe.RateLimitError):
        return ProviderUnavailable(repr(exc), maybe_charged=False)
    if isinstance(exc, stripe.APIConnectionError) and _never_sent(exc):
        return ProviderUnavailable(repr(exc), maybe_charged=False)
    # A timeout, a dropped connection, a 5xx, an unreadable answer: it may have been done.
    return ProviderUnavailable(repr(exc), maybe_charged=charging)


@dataclass(frozen=True)
class Intent:
    """What checkout reads of a PaymentIntent."""

    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None
    order_id: str | None
    claim_id: str | None
    # Stripe's message for the last failed charge or authentication, if any.
    error: str | None = None
    error_code: str | None = None

    @classmethod
    def of(cls, found: Any) -> Intent:
        """From the library's PaymentIntent (or an event's object)."""
        intent: dict[str, Any] = found.to_dict()
        metadata = intent.get("metadata") or {}
        error = intent.get("last_payment_error") or {}
        return cls(
            id=intent["id"],
            status=intent["status"],
            amount=int(intent["amount"]),
            currency=intent["currency"],
            client_secret=intent.get("client_secret"),
            order_id=metadata.get("orderId"),
            claim_id=metadata.get("claimId"),
            error=error.get("message"),
            error_code=error.get("code"),
        )


class StripeGateway:
    """What checkout asks of Stripe."""

    def __init__(self, key: str, api_base: str | None, timeout: float, api_version: str) -> None:
        self.http_client = stripe.HTTPXClient(timeout=timeout)
        self.client = stripe.StripeClient(
            key,
            base_addresses={"api": api_base} if api_base else None,
            stripe_version=api_version,
            http_client=self.http_client,
            # No silent retries inside the library: from each failure the checkout
            # decides whether the claim may be released or the attempt must be replayed.
            max_network_retries=0,
        )

    async def payment_method_for(self, token: str) -> str:
        """The payment method to charge for the client's `token`: a card token's card,
        or the `card_...` / `pm_...` id itself."""
        if not token.startswith("tok_"):
            return token
        try:
            found = await self.client.v1.tokens.retrieve_async(token)
        except stripe.StripeError as exc:
            raise translate(exc, charging=False) from exc
        if found.card is None:
            raise PaymentDeclined("The token does not hold a card", "token")
        return found.card.id

    async def create_intent(
        self, *, order_id: str, claim_id: str, amount: int, payment_method: str
    ) -> Intent:
        """Create and confirm a PaymentIntent of `amount` cents. The idempotency key names
        the order and the attempt, so replaying an attempt can never charge twice (a
        replay answers the first answer again: `retrieve_intent` tells what it is now)."""
        try:
            intent = await self.client.v1.payment_intents.create_async(
                params={  # type: ignore[typeddict-unknown-key]
                    "amount": amount,
                    "currency": "usd",
                    "payment_method": payment_method,
                    # Card only: no redirect-based method can be confirmed here.
                    # The library's types follow its own API version, which dropped this
                    # parameter; STRIPE_API_VERSION pins one that has it (localstripe
                    # knows only this one, not `allowed_payment_method_types`).
                    "payment_method_types": ["card"],
                    "confirm": True,
                    # The webhook and the completion call match the intent to its claim.
                    "metadata": {"orderId": order_id, "claimId": claim_id},
                },
                options={"idempotency_key": f"pay:{order_id}:{claim_id}"},
            )
        except stripe.StripeError as exc:
            raise translate(exc, charging=True) from exc
        return Intent.of(intent)

    async def retrieve_intent(self, intent_id: str) -> Intent:
        """The intent as Stripe has it now. Any failure may hide a charge: the caller keeps
        its claim."""
        try:
            intent = await self.client.v1.payment_intents.retrieve_async(intent_id)
        except stripe.StripeError as exc:
            raise ProviderUnavailable(
                f"retrieving {intent_id}: {exc!r}", maybe_charged=True
            ) from exc
        return Intent.of(intent)

    async def cancel_intent(self, intent_id: str) -> Intent | None:
        """Cancel the intent so it can no longer charge; None when Stripe refuses (it
        succeeded, is processing or was cancelled meanwhile: retrieve it to know which).
        A refusal never reads as a decline: the intent may still charge."""
        try:
            intent = await self.client.v1.payment_intents.cancel_async(intent_id)
        except stripe.InvalidRequestError as exc:
            logger.info("cancelling %s refused: %s", intent_id, exc.user_message or exc)
            return None
        except stripe.StripeError as exc:
            raise ProviderUnavailable(
                f"cancelling {intent_id}: {exc!r}", maybe_charged=True
            ) from exc
        return Intent.of(intent)

    async def refund(self, *, order_id: str, payment_intent: str) -> str:
        """Refund the payment in full; the refund's id. An existing refund of it (an
        earlier run stopped before recording it) is reused rather than doubled."""
        try:
            existing = await self.client.v1.refunds.list_async(
                params={"payment_intent": payment_intent, "limit": 1}
            )
            if existing.data:
                return existing.data[0].id
            refund = await self.client.v1.refunds.create_async(
                params={"payment_intent": payment_intent},
                options={"idempotency_key": f"refund:{order_id}"},
            )
        except stripe.StripeError as exc:
            raise translate(exc, charging=True) from exc
        return refund.id

    async def close(self) -> None:
        await self.http_client.close_async()  # type: ignore[no-untyped-call]
