"""The rules of the payments service: paying an order once (the payment and completion
routes, Stripe's webhooks), keeping the order replicas (the `order:created` and
`order:cancelled` handlers of docs/SPEC.md §4), and refunding a paid order that ended
cancelled.

The claim (see `repository`) is taken before Stripe is called and the order is checked
again after it, while the `order:cancelled` listener marks the replica cancelled before
it looks for a claim. Whichever of the two writes first, the other sees it: a payment
either stops at the re-check, or its claim is seen by the listener, which waits for the
attempt to finish and refunds it if it charged.

A PaymentIntent that is not `succeeded` is never read as "not charged" from its first
answer: the claim is released only once the intent is `canceled` (an intent still able
to charge is cancelled first; Stripe refusing that cancel means it moved on, so it is
retrieved again). `requires_action` (3-D Secure) waits in the browser, `processing` and
anything unclear keep the claim `unknown` for a replay, the completion call or a webhook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bson import ObjectId

from payments.events.publishers import payment_created_event
from payments.gateway import Intent, PaymentDeclined, ProviderUnavailable, StripeGateway
from payments.metrics import PaymentOutcomes
from payments.models import OrderReplica, Payment, PaymentStatus
from payments.reconciler import RefundReconciler
from payments.repository import OrderReplicas, Payments, StripeEvents
from ticketing_common.errors import (
    BadRequestError,
    NotAuthorizedError,
    NotFoundError,
    PaymentProviderError,
)
from ticketing_common.events import OrderCancelledEvent, OrderCreatedEvent, RetryLater
from ticketing_common.money import to_cents
from ticketing_common.mongo import utcnow
from ticketing_common.replicas import ReplicaUpdate, arriving

logger = logging.getLogger("payments.checkout")

ALREADY_PAID = "Order is already paid"
AUTHENTICATION_FAILED = "Card authentication failed; please try again or use another card"
NOT_AUTHENTICATED = "Card authentication is not complete; please finish it or pay again"
NOT_COMPLETED = "The payment was not completed; please try again or use another card"
CANCELLED = "Cannot pay for a cancelled order"
# Statuses of an intent that could still charge if confirmed: cancelled before release.
CANCELLABLE = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"}
)
WEBHOOK_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})
# Rounds of "find the order held, resolve what holds it, claim again" one request makes.
MAX_CLAIM_ROUNDS = 3


@dataclass(frozen=True)
class PaymentService:
    """The payments rules, over the order replicas, the payments and Stripe.
    `claim_timeout`: the age at which a `pending` claim counts as abandoned;
    `replica_wait`: how long a payment of an order not replicated yet waits for its
    `order:created`."""

    orders: OrderReplicas
    payments: Payments
    stripe_events: StripeEvents
    gateway: StripeGateway
    refunds: RefundReconciler
    claim_timeout: float
    outcomes: PaymentOutcomes = field(default_factory=PaymentOutcomes)
    replica_wait: float = 0.0

    # The payment route ------------------------------------------------------------------

    async def pay(self, user_id: str, order_id: str, token: str) -> Payment:
        """Charge the order's price once; the payment, `paid`, or
        `authenticating` when the buyer must finish 3-D Secure in the browser."""
        order = await arriving(lambda: self.orders.get(order_id), self.replica_wait)
        self._check_payable(order, user_id)
        try:
            claim = await self._claim(order_id, user_id)
            try:
                order = self._check_payable(await self.orders.get(order_id), user_id)
                payment_method = await self.gateway.payment_method_for(token)
            except BaseException:
                # Nothing was charged (the token lookup only reads): free the order.
                await self.payments.release(claim)
                raise
            recorded = await self.payments.record_attempt(claim, payment_method, order.price_cents)
            if recorded is None:
                raise RuntimeError(f"claim on order {order_id} lost before charging")
            return await self._attempt(recorded, replay=False)
        except PaymentDeclined as exc:
            raise BadRequestError(exc.message, exc.field) from exc
        except ProviderUnavailable as exc:
            logger.warning("payment provider unavailable: %s", exc)
            self.outcomes.provider_error.inc()
            raise PaymentProviderError() from exc

    def _check_payable(self, order: OrderReplica | None, user_id: str) -> OrderReplica:
        if order is None:
            raise NotFoundError()
        if order.user_id != user_id:
            raise NotAuthorizedError()
        if order.cancelled:
            raise BadRequestError(CANCELLED)
        if order.expires_at <= utcnow():
            raise BadRequestError("Order has expired")
        return order

    async def _claim(self, order_id: str, user_id: str) -> Payment:
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

    def _unresolved(self, payment: Payment) -> bool:
        """A claim nobody is working on that may or may not have charged (an intent
        waiting for authentication counts: a new attempt or a cancel abandons it)."""
        if payment.status in (PaymentStatus.UNKNOWN, PaymentStatus.AUTHENTICATING):
            return True
        if payment.status != PaymentStatus.PENDING:
            return False
        age = (utcnow() - payment.claimed_at).total_seconds()
        return age > self.claim_timeout

    async def _attempt(self, claim: Payment, *, replay: bool) -> Payment:
        """Charge the claim's recorded attempt and record the outcome.

        Paid: the payment. Needs authentication (not on a replay, which abandons
        it): the `authenticating` payment. Not charged: the claim is released and
        PaymentDeclined raised. Provider trouble: the claim is released when the charge
        cannot have happened, else kept `unknown`; PaymentProviderError raised.
        """
        attempt = claim.attempt
        if attempt is None:
            # Its request stopped before sending anything: nothing to learn.
            await self.payments.release(claim)
            raise PaymentDeclined("The earlier attempt never reached the payment provider")
        try:
            if claim.stripe_id:
                intent = await self.gateway.retrieve_intent(claim.stripe_id)
            else:
                intent = await self.gateway.create_intent(
                    order_id=claim.order_id,
                    claim_id=claim.claim_id,
                    amount=attempt.amount_cents,
                    payment_method=attempt.payment_method,
                )
                if replay and intent.status != "succeeded":
                    # A replayed create answers as it first did: ask how it is now.
                    intent = await self.gateway.retrieve_intent(intent.id)
        except PaymentDeclined:
            await self.payments.release(claim)
            self.outcomes.declined.inc()
            raise
        except ProviderUnavailable as exc:
            self.outcomes.provider_error.inc()
            # A replay's earlier send may have charged even if this one never left.
            if exc.maybe_charged or replay:
                logger.warning(
                    "payment for order %s (claim %s) may have been charged (%s); kept for a replay",
                    claim.order_id,
                    claim.claim_id,
                    exc,
                )
                await self.payments.mark_unknown(claim)
            else:
                logger.warning("payment provider unavailable: %s", exc)
                await self.payments.release(claim)
            raise PaymentProviderError() from exc
        return await self._settle_intent(claim, intent, abandon=replay)

    async def _settle_intent(self, claim: Payment, intent: Intent, *, abandon: bool) -> Payment:
        """Record what `intent` says about the claim's attempt (see `_attempt`); with
        `abandon`, an intent waiting for authentication is cancelled instead of kept."""
        try:
            for _ in range(2):
                if not self._belongs(claim, intent):
                    await self.payments.mark_unknown(claim)
                    self.outcomes.provider_error.inc()
                    raise PaymentProviderError()
                if intent.status == "succeeded":
                    return await self._record_paid(claim, intent)
                if intent.status == "requires_action" and not abandon and intent.client_secret:
                    waiting = await self.payments.mark_authenticating(
                        claim, intent.id, intent.client_secret
                    )
                    if waiting is None:
                        raise RuntimeError(f"claim on order {claim.order_id} lost")
                    self.outcomes.requires_action.inc()
                    logger.info(
                        "payment %s for order %s needs authentication", intent.id, claim.order_id
                    )
                    return waiting
                if intent.status == "canceled":
                    await self.payments.release(claim)
                    self.outcomes.declined.inc()
                    raise PaymentDeclined(self._not_charged(claim, intent), "token")
                if intent.status not in CANCELLABLE:
                    break  # `processing`: it may still charge
                logger.info(
                    "payment %s for order %s ended %s; cancelling",
                    intent.id,
                    claim.order_id,
                    intent.status,
                )
                cancelled = await self.gateway.cancel_intent(intent.id)
                intent = cancelled or await self.gateway.retrieve_intent(intent.id)
        except ProviderUnavailable as exc:
            logger.warning("payment %s for order %s unresolved: %s", intent.id, claim.order_id, exc)
            await self.payments.mark_unknown(claim, intent.id)
            self.outcomes.provider_error.inc()
            raise PaymentProviderError() from exc
        logger.warning(
            "payment %s for order %s is %s; kept unknown until it settles",
            intent.id,
            claim.order_id,
            intent.status,
        )
        await self.payments.mark_unknown(claim, intent.id)
        self.outcomes.provider_error.inc()
        raise PaymentProviderError()

    def _belongs(self, claim: Payment, intent: Intent) -> bool:
        """The intent is this claim's attempt: its order, attempt and amount."""
        amount = claim.attempt.amount_cents if claim.attempt else None
        mismatch = (
            intent.order_id != claim.order_id
            or (intent.claim_id is not None and intent.claim_id != claim.claim_id)
            or (claim.stripe_id is not None and claim.stripe_id != intent.id)
            or intent.amount != amount
            or intent.currency != "usd"
        )
        if mismatch:
            logger.error(
                "payment intent %s (order %s, claim %s, %d %s) does not match the claim %s of "
                "order %s (%s cents); kept for a person to look",
                intent.id,
                intent.order_id,
                intent.claim_id,
                intent.amount,
                intent.currency,
                claim.claim_id,
                claim.order_id,
                amount,
            )
        return not mismatch

    @staticmethod
    def _not_charged(claim: Payment, intent: Intent) -> str:
        if (
            intent.error_code == "payment_intent_authentication_failure"
            or claim.status is PaymentStatus.AUTHENTICATING
        ):
            return AUTHENTICATION_FAILED
        return intent.error or NOT_COMPLETED

    async def _record_paid(self, claim: Payment, intent: Intent) -> Payment:
        assert claim.attempt is not None, "only a sent attempt is paid"
        amount = claim.attempt.amount_cents
        after = claim.paid(intent.id, amount, utcnow())
        paid = await self.payments.mark_paid(claim, after, [payment_created_event(after)])
        if paid is None:
            # A concurrent resolver of the same attempt (same key, same charge) was first.
            paid = await self.payments.for_order(claim.order_id)
            if paid is None or paid.stripe_id != intent.id:
                raise RuntimeError(
                    f"payment {intent.id} for order {claim.order_id} could not be recorded"
                )
        else:
            self.outcomes.paid.inc()
            logger.info("order %s paid: %s, %d cents", claim.order_id, intent.id, amount)
        # Recorded, then the order read: if its cancel landed meanwhile, the listener may
        # have seen only the claim, so the refund is made due here too.
        order = await self.orders.get(claim.order_id)
        if order is not None and order.cancelled:
            await self.refunds.refund_due(paid)
        return paid

    # The completion call after 3-D Secure ---------------------------------------------

    async def complete(self, user_id: str, payment_id: ObjectId) -> Payment:
        """After the browser's authentication step: learn the intent's outcome from
        Stripe and record it as a direct payment would; the paid payment."""
        payment = await self.payments.get(payment_id)
        if payment is None:
            raise NotFoundError()
        if payment.user_id != user_id:
            raise NotAuthorizedError()
        if payment.status == PaymentStatus.PAID:
            return payment
        if not payment.holds_order:
            raise BadRequestError(CANCELLED)
        if not payment.stripe_id or not payment.attempt:
            raise BadRequestError(ALREADY_PAID)  # its own request is still under way
        order = await self.orders.get(payment.order_id)
        cancelled = order is None or order.cancelled
        closed = cancelled or (order is not None and order.expires_at <= utcnow())
        try:
            intent = await self.gateway.retrieve_intent(payment.stripe_id)
            done = await self._settle_intent(payment, intent, abandon=closed)
        except PaymentDeclined as exc:
            if closed:
                raise BadRequestError(CANCELLED if cancelled else "Order has expired") from exc
            raise BadRequestError(exc.message, exc.field) from exc
        except ProviderUnavailable as exc:
            logger.warning("payment provider unavailable: %s", exc)
            raise PaymentProviderError() from exc
        if done.status == PaymentStatus.AUTHENTICATING:
            raise BadRequestError(NOT_AUTHENTICATED)
        if done.status != PaymentStatus.PAID:
            raise BadRequestError(CANCELLED)  # charged after all, and being refunded
        return done

    # Stripe's webhooks -----------------------------------------------------------------

    async def stripe_event(self, event_id: str, event_type: str, intent: Intent | None) -> None:
        """A verified Stripe event (`intent` is its object when it is about a
        PaymentIntent), handled once: a replayed event id changes nothing."""
        if await self.stripe_events.seen(event_id):
            logger.info("webhook event %s (%s) already processed", event_id, event_type)
            return
        if intent is not None:
            await self._on_intent_event(event_type, intent)
        await self.stripe_events.record(event_id, event_type)

    async def _on_intent_event(self, event_type: str, intent: Intent) -> None:
        """A signed `payment_intent.*` event: complete or release the attempt it names,
        if the request path has not. Idempotent: anything already recorded is left."""
        if event_type not in WEBHOOK_EVENTS or intent.order_id is None:
            return
        payment = await self.payments.for_order(intent.order_id)
        succeeded = event_type == "payment_intent.succeeded"
        if (
            payment is None
            or not payment.holds_order
            or (intent.claim_id is not None and intent.claim_id != payment.claim_id)
        ):
            if succeeded and (payment is None or payment.stripe_id != intent.id):
                logger.error(
                    "payment intent %s charged order %s but no attempt of ours holds it; "
                    "a person must look",
                    intent.id,
                    intent.order_id,
                )
            return
        if payment.attempt is None:
            return  # nothing was sent for this claim: the event is about another one
        try:
            if succeeded:
                # The event is signed and `succeeded` is final: no need to ask again.
                if not self._belongs(payment, intent):
                    await self.payments.mark_unknown(payment)
                    return
                await self._record_paid(payment, intent)
                return
            fresh = await self.gateway.retrieve_intent(intent.id)
            await self._settle_intent(payment, fresh, abandon=True)
        except PaymentDeclined:
            logger.info(
                "payment %s for order %s failed; order payable again", intent.id, intent.order_id
            )
        except ProviderUnavailable as exc:
            raise PaymentProviderError() from exc

    # The order events -------------------------------------------------------------------

    async def order_created(self, data: OrderCreatedEvent) -> None:
        """Store the replica of a new order; a duplicate is a no-op."""
        replica = OrderReplica(
            id=data.id,
            version=data.version,
            user_id=data.user_id,
            price_cents=to_cents(data.ticket.price),
            status=data.status,
            expires_at=data.expires_at,
        )
        if not await self.orders.add(replica):
            logger.info("order %s already replicated; duplicate ignored", data.id)

    async def order_cancelled(self, data: OrderCancelledEvent) -> None:
        """Mark the replica cancelled on top of the version just before (RetryLater while
        that version has not arrived); then settle the order's payment."""
        outcome = await self.orders.apply_cancelled(data.id, data.version)
        if outcome is ReplicaUpdate.NOT_YET:
            raise RetryLater(f"order {data.id} replica is not at version {data.version - 1}")
        if outcome is ReplicaUpdate.ALREADY_APPLIED:
            logger.info("order %s v%d already applied", data.id, data.version)
        # Also on a redelivery: an earlier delivery may have stopped at an attempt in
        # flight or a failed refund; settling is idempotent.
        await self._settle_cancelled(data.id)

    async def _settle_cancelled(self, order_id: str) -> None:
        """After the replica is marked cancelled: wait for an attempt in flight, cancel an
        intent waiting for authentication, and make a charge of the order due for a refund
        (which the reconciler retries; this handler does not wait for it)."""
        payment = await self.payments.for_order(order_id)
        if payment is None or payment.status == PaymentStatus.REFUNDED:
            return
        if payment.holds_order:
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
        await self.refunds.refund_due(payment)
