"""Refunds that must not be dropped: a `refundDue` payment is retried until it is refunded.

The `order:cancelled` handler (or whoever records a charge for an order that ended
cancelled) marks the payment `refundDue` and tries once; whatever fails is left to the
reconciler, which runs in the payments lifespan like the outbox re-publisher: every
`REFUND_INTERVAL_SECONDS` it retries the due refunds, each with its own back-off, until
Stripe refunds it or `REFUND_MAX_ATTEMPTS` tries have failed. Then a person must look:
the payment is marked `needsAttention`, an error is logged and `needs_attention` (a count
a metrics endpoint can expose) goes up.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from payments.gateway import PaymentDeclined, ProviderUnavailable, StripeGateway
from payments.metrics import PaymentOutcomes
from payments.models import Payment, PaymentStatus
from payments.repository import Payments
from ticketing_common.mongo import utcnow
from ticketing_common.periodic import Periodic

logger = logging.getLogger("payments.refunds")


class RefundReconciler:
    def __init__(
        self,
        payments: Payments,
        gateway: StripeGateway,
        *,
        interval: float,
        retry_min: float,
        retry_max: float,
        max_attempts: int,
        lease: float,
        outcomes: PaymentOutcomes | None = None,
    ) -> None:
        self.payments = payments
        self.gateway = gateway
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.max_attempts = max_attempts
        # How long one try holds a due refund: longer than its Stripe calls.
        self.lease = lease
        # Refunds given up on since start: each needs a person.
        self.needs_attention = 0
        self.outcomes = outcomes or PaymentOutcomes()
        self._loop = Periodic("refund-reconciler", self.run_once, interval, wait_first=True)

    async def refund_due(self, payment: Payment) -> None:
        """Mark a paid payment of a cancelled order `refundDue` and try the refund once;
        a failure is left to the periodic retries (never raised)."""
        due = await self.payments.mark_refund_due(payment)
        if due is None or due.status is not PaymentStatus.REFUND_DUE:
            return
        await self.refund(due)

    async def refund(self, due: Payment) -> bool:
        """One try at a due refund whose next try has come (none when another try holds
        it or its back-off runs); whether it is refunded now."""
        leased = await self.payments.lease_refund(due, self.lease)
        if leased is None:
            return False
        due = leased
        assert due.stripe_id is not None, "only a charged payment is refunded"
        try:
            refund_id = await self.gateway.refund(
                order_id=due.order_id, payment_intent=due.stripe_id
            )
        except (PaymentDeclined, ProviderUnavailable) as exc:
            await self._failed(due, exc)
            return False
        await self.payments.mark_refunded(due, refund_id)
        self.outcomes.refunded.inc()
        logger.info(
            "order %s ended cancelled after payment %s: refunded %s",
            due.order_id,
            due.stripe_id,
            refund_id,
        )
        return True

    async def _failed(self, due: Payment, exc: Exception) -> None:
        attempts = due.refund_attempts + 1
        if attempts >= self.max_attempts:
            self.needs_attention += 1
            self.outcomes.refund_needs_attention.inc()
            logger.error(
                "refund of order %s (payment %s, %d cents) failed %d times; giving up, "
                "a person must refund it: %r",
                due.order_id,
                due.stripe_id,
                due.amount_cents or 0,
                attempts,
                exc,
            )
            await self.payments.refund_failed(due, repr(exc), None)
            return
        delay = min(self.retry_max, self.retry_min * 2 ** min(attempts - 1, 30))
        logger.warning(
            "refund of order %s failed (try %d): %r; retry in %.1fs",
            due.order_id,
            attempts,
            exc,
            delay,
        )
        await self.payments.refund_failed(due, repr(exc), utcnow() + timedelta(seconds=delay))

    async def run_once(self) -> int:
        """Retry every refund whose next try has come; how many were refunded."""
        refunded = 0
        for due in await self.payments.refunds_due():
            refunded += await self.refund(due)
        return refunded

    def start(self) -> None:
        """Retry the due refunds every `interval` seconds, in the background."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
