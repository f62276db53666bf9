"""The records the payments service works with; `repository` stores them as documents.

A payment is also its order's claim (one per order); `repository`'s docstring tells its
life from `pending` to `refunded`. An order replica is what payments knows of an order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from ticketing_common.events import OrderStatus


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    UNKNOWN = "unknown"
    AUTHENTICATING = "authenticating"
    PAID = "paid"
    REFUND_DUE = "refundDue"
    REFUNDED = "refunded"


# Statuses of a claim that still holds the order and has not charged as far as we know.
HELD = (PaymentStatus.PENDING, PaymentStatus.UNKNOWN, PaymentStatus.AUTHENTICATING)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a claim sends to Stripe, recorded before it is sent so a replay sends the same."""

    payment_method: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment of one order, from its claim on. `claim_id` names the attempt (Stripe's
    idempotency key and the intent's metadata); `stripe_id` is its PaymentIntent once
    known, `client_secret` the intent's while the buyer authenticates; `amount_cents` is
    what was charged. The refund fields count the tries of a `refundDue` payment."""

    id: str
    order_id: str
    user_id: str
    claim_id: str
    status: PaymentStatus
    claimed_at: datetime
    attempt: Attempt | None = None
    stripe_id: str | None = None
    client_secret: str | None = None
    amount_cents: int | None = None
    paid_at: datetime | None = None
    refund_attempts: int = 0
    refund_next_at: datetime | None = None
    refund_error: str | None = None
    needs_attention: bool = False
    refund_id: str | None = None
    refunded_at: datetime | None = None

    @property
    def holds_order(self) -> bool:
        """A claim that holds the order and has not charged as far as we know."""
        return self.status in HELD

    def paid(self, stripe_id: str, amount_cents: int, at: datetime) -> Payment:
        """This claim charged by the intent `stripe_id`."""
        return replace(
            self,
            status=PaymentStatus.PAID,
            stripe_id=stripe_id,
            amount_cents=amount_cents,
            paid_at=at,
        )


@dataclass(frozen=True, slots=True)
class OrderReplica:
    """An order as payments knows it: who may pay it, its price, and whether it is still
    payable (not cancelled, not past `expires_at`). `version` is the orders service's."""

    id: str
    version: int
    user_id: str
    price_cents: int
    status: OrderStatus
    expires_at: datetime

    @property
    def cancelled(self) -> bool:
        return self.status is OrderStatus.CANCELLED
