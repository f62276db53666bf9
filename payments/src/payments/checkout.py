"""Paying an order once, and refunding a paid order that ended cancelled.

The claim (see `repository`) is taken before Stripe is called and the order is checked
again after it, while the `order:cancelled` listener marks the replica cancelled before
it looks for a claim. Whichever of the two writes first, the other sees it: a payment
either stops at the re-check, or its claim is seen by the listener, which waits for the
attempt to finish and refunds it if it charged.
"""

from __future__ import annotations

import logging

from payments.gateway import PaymentDeclined, ProviderUnavailable, StripeGateway
from payments.repository import OrderReplicas, Payments, PaymentStatus
from ticketing_common.errors import (
    BadRequestError,
    NotAuthorizedError,
    NotFoundError,
    PaymentProviderError,
)
from ticketing_common.events import OrderStatus, RetryLater
from ticketing_common.mongo import Document, as_utc, utcnow

logger = logging.getLogger("payments.checkout")

ALREADY_PAID = "Order is already paid"
# Rounds of "find the order held, resolve what holds it, claim again" one request makes.
MAX_CLAIM_ROUNDS = 3


class Checkout:
    def __init__(
        self,
        orders: OrderReplicas,
        payments: Payments,
        gateway: StripeGateway,
        claim_timeout: float,
    ) -> None:
        self.orders = orders
        self.payments = payments
        self.gateway = gateway
        self.claim_timeout = claim_timeout

    # The payment route ------------------------------------------------------------------

    async def pay(self, user_id: str, order_id: str, token: str) -> Document:
        """Charge the order's price once; the paid payment document."""
        self._check_payable(await self.orders.get(order_id), user_id)
        try:
            claim = await self._claim(order_id, user_id)
            try:
                order = self._check_payable(await self.orders.get(order_id), user_id)
                payment_method = await self.gateway.payment_method_for(token)
            except BaseException:
                # Nothing was charged (the token lookup only reads): free the order.
                await self.payments.release(claim)
                raise
            recorded = await self.payments.record_attempt(
                claim, payment_method, order["priceCents"]
            )
            if recorded is None:
                raise RuntimeError(f"claim on order {order_id} lost before charging")
            return await self._attempt(recorded, replay=False)
        except PaymentDeclined as exc:
            raise BadRequestError(exc.message, exc.field) from exc
        except ProviderUnavailable as exc:
            logger.warning("payment provider unavailable: %s", exc)
            raise PaymentProviderError() from exc

    def _check_payable(self, order: Document | None, user_id: str) -> Document:
        if order is None:
            raise NotFoundError()
        if order["userId"] != user_id:
            raise NotAuthorizedError()
        if order["status"] == OrderStatus.CANCELLED:
            raise BadRequestError("Cannot pay for a cancelled order")
        if as_utc(order["expiresAt"]) <= utcnow():
            raise BadRequestError("Order has expired")
        return order

    async def _claim(self, order_id: str, user_id: str) -> Document:
        for _ in range(MAX_CLAIM_ROUNDS):
            claim = await self.payments.claim(order_id, user_id)
            if claim is not None:
                return claim
            held = await self.payments.for_order(order_id)
            if held is None:
                continue  # released meanwhile
            if not self._unresolved(held):
                # Paid, or another request's attempt is under way: that one decides.
                raise BadRequestError(ALREADY_PAID)
            # An earlier attempt may have charged: learn its outcome before a new one.
            taken = await self.payments.take_over(order_id, self.claim_timeout)
            if taken is None:
                raise BadRequestError(ALREADY_PAID)
            try:
                await self._attempt(taken, replay=True)
            except PaymentDeclined:
                continue  # it did not charge: this request makes a new attempt
            raise BadRequestError(ALREADY_PAID)
        raise BadRequestError(ALREADY_PAID)

    def _unresolved(self, payment: Document) -> bool:
        """A claim nobody is working on that may or may not have charged."""
        if payment["status"] == PaymentStatus.UNKNOWN:
            return True
        if payment["status"] != PaymentStatus.PENDING:
            return False
        age = (utcnow() - as_utc(payment["claimedAt"])).total_seconds()
        return age > self.claim_timeout

    async def _attempt(self, claim: Document, *, replay: bool) -> Document:
        """Charge the claim's recorded attempt and record the outcome.

        Paid: the payment document. Declined: the claim is released and PaymentDeclined
        raised. Provider trouble: the claim is released when the charge cannot have
        happened, else kept `unknown`; PaymentProviderError raised.
        """
        attempt = claim.get("attempt")
        if attempt is None:
            # Its request stopped before sending anything: nothing to learn.
            await self.payments.release(claim)
            raise PaymentDeclined("The earlier attempt never reached the payment provider")
        try:
            stripe_id = await self.gateway.charge(
                order_id=claim["orderId"],
                claim_id=claim["claimId"],
                amount=attempt["amount"],
                payment_method=attempt["paymentMethod"],
            )
        except PaymentDeclined:
            await self.payments.release(claim)
            raise
        except ProviderUnavailable as exc:
            # A replay's earlier send may have charged even if this one never left.
            if exc.maybe_charged or replay:
                logger.warning(
                    "payment for order %s (claim %s) may have been charged (%s); kept for a replay",
                    claim["orderId"],
                    claim["claimId"],
                    exc,
                )
                await self.payments.mark_unknown(claim)
            else:
                logger.warning("payment provider unavailable: %s", exc)
                await self.payments.release(claim)
            raise PaymentProviderError() from exc
        paid = await self.payments.mark_paid(claim, stripe_id, attempt["amount"])
        if paid is None:
            # A concurrent resolver of the same attempt (same key, same charge) was first.
            paid = await self.payments.for_order(claim["orderId"])
            if paid is None or paid.get("stripeId") != stripe_id:
                raise RuntimeError(
                    f"payment {stripe_id} for order {claim['orderId']} could not be recorded"
                )
        logger.info("order %s paid: %s, %d cents", claim["orderId"], stripe_id, attempt["amount"])
        return paid

    # The order:cancelled listener -------------------------------------------------------

    async def settle_cancelled(self, order_id: str) -> None:
        """After the replica is marked cancelled: wait for an attempt in flight, and
        refund a charge of the order."""
        payment = await self.payments.for_order(order_id)
        if payment is None or payment["status"] == PaymentStatus.REFUNDED:
            return
        if payment["status"] != PaymentStatus.PAID:
            if not self._unresolved(payment):
                raise RetryLater(f"a payment attempt for order {order_id} is in flight")
            taken = await self.payments.take_over(order_id, self.claim_timeout)
            if taken is None:
                raise RetryLater(f"another resolver holds the payment of order {order_id}")
            try:
                payment = await self._attempt(taken, replay=True)
            except PaymentDeclined:
                return  # the attempt did not charge: nothing to refund
            except PaymentProviderError as exc:
                raise RetryLater(f"payment of order {order_id} not resolved yet") from exc
        await self._refund(payment)

    async def _refund(self, payment: Document) -> None:
        try:
            refund_id = await self.gateway.refund(
                order_id=payment["orderId"], payment_intent=payment["stripeId"]
            )
        except (PaymentDeclined, ProviderUnavailable) as exc:
            raise RetryLater(f"refund of order {payment['orderId']} failed: {exc}") from exc
        await self.payments.mark_refunded(payment, refund_id)
        logger.info(
            "order %s ended cancelled after payment %s: refunded %s",
            payment["orderId"],
            payment["stripeId"],
            refund_id,
        )
