"""All database access of the payments service: order replicas and payments.

A payment document is also the order's claim: one per order (a unique index on
`orderId`), inserted `pending` before Stripe is called, so concurrent requests for one
order cannot both charge. Its life:

- `pending`: a request holds the order and may be talking to Stripe. `attempt` (the
  payment method and amount) is recorded before the charge is sent.
- deleted: the attempt failed without charging (declined, refused, provider never
  reached); the order is payable again with a new claim.
- `unknown`: Stripe failed in a way that may have charged (or the intent is still
  `processing`); the claim keeps holding the order until someone replays the same attempt
  (same idempotency key) or retrieves its intent (`stripeId`, when known) to learn the
  outcome, or a webhook tells it.
- `authenticating`: the intent (`stripeId`) waits for the buyer's 3-D Secure step in the
  browser, which got its `clientSecret`. The claim holds the order; the completion call or
  a webhook records the outcome, and a new attempt or the order's cancel cancels it.
- `paid`: charged, with `stripeId` and `amount` (cents); `payment:created` in its outbox.
- `refundDue`: paid, and the order ended cancelled: the reconciler refunds it, retrying
  with back-off (`refundAttempts`, `refundNextAt`) until it is refunded or marked
  `needsAttention` for a person.
- `refunded`: a paid order that ended cancelled, with `refundId`.
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import (
    OrderCreatedEvent,
    OrderStatus,
    Outbox,
    PaymentCreatedEvent,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import Collection, Document, utcnow
from ticketing_common.replicas import ReplicaUpdate, apply_in_order, insert_replica


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    UNKNOWN = "unknown"
    AUTHENTICATING = "authenticating"
    PAID = "paid"
    REFUND_DUE = "refundDue"
    REFUNDED = "refunded"


# Statuses of a claim that still holds the order and has not charged as far as we know.
HELD = (PaymentStatus.PENDING, PaymentStatus.UNKNOWN, PaymentStatus.AUTHENTICATING)


class OrderReplicas:
    """The orders this service knows, each at its orders-service version."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def add(self, event: OrderCreatedEvent) -> bool:
        """Store the replica of a new order; False when it is already there."""
        doc = {
            "_id": ObjectId(event.id),
            "version": event.version,
            "userId": event.user_id,
            "priceCents": to_cents(event.ticket.price),
            "status": event.status.value,
            "expiresAt": event.expires_at,
        }
        return await insert_replica(self.collection, doc)

    async def apply_cancelled(self, order_id: str, version: int) -> ReplicaUpdate:
        """Mark the order cancelled at `version` if the replica is at the version before."""
        return await apply_in_order(
            self.collection,
            ObjectId(order_id),
            version,
            {"status": OrderStatus.CANCELLED.value},
        )

    async def get(self, order_id: str) -> Document | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(order_id)})
        return doc


class Payments:
    """Payments and the claims that precede them (see the module docstring)."""

    def __init__(self, collection: Collection, outbox: Outbox) -> None:
        self.collection = collection
        self.outbox = outbox

    async def create_indexes(self) -> None:
        await self.collection.create_index("orderId", unique=True, name="one_payment_per_order")

    async def get(self, payment_id: ObjectId) -> Document | None:
        doc: Document | None = await self.collection.find_one({"_id": payment_id})
        return doc

    async def for_order(self, order_id: str) -> Document | None:
        doc: Document | None = await self.collection.find_one({"orderId": order_id})
        return doc

    async def claim(self, order_id: str, user_id: str) -> Document | None:
        """Take the order for a new attempt; None when another claim or payment holds it."""
        doc: Document = {
            "_id": ObjectId(),
            "orderId": order_id,
            "userId": user_id,
            "claimId": uuid.uuid4().hex,
            "status": PaymentStatus.PENDING.value,
            "claimedAt": utcnow(),
            "attempt": None,
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    async def take_over(self, order_id: str, timeout: float) -> Document | None:
        """Take an unresolved claim (`unknown`, `authenticating`, or `pending` for longer
        than `timeout` seconds) to resolve it; None when there is none to take (or another
        took it)."""
        now = utcnow()
        doc: Document | None = await self.collection.find_one_and_update(
            {
                "orderId": order_id,
                "$or": [
                    {
                        "status": {
                            "$in": [PaymentStatus.UNKNOWN.value, PaymentStatus.AUTHENTICATING]
                        }
                    },
                    {
                        "status": PaymentStatus.PENDING.value,
                        "claimedAt": {"$lt": now - timedelta(seconds=timeout)},
                    },
                ],
            },
            {"$set": {"status": PaymentStatus.PENDING.value, "claimedAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def record_attempt(
        self, claim: Document, payment_method: str, amount: int
    ) -> Document | None:
        """Store what is about to be sent to Stripe, so a replay sends exactly the same."""
        doc: Document | None = await self.collection.find_one_and_update(
            self._held(claim),
            {"$set": {"attempt": {"paymentMethod": payment_method, "amount": amount}}},
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def release(self, claim: Document) -> None:
        """Drop a claim whose attempt did not charge: the order is payable again."""
        await self.collection.delete_one(self._held(claim))

    async def mark_unknown(self, claim: Document, stripe_id: str | None = None) -> None:
        update: Document = {"status": PaymentStatus.UNKNOWN.value}
        if stripe_id is not None:
            update["stripeId"] = stripe_id
        await self.collection.update_one(self._held(claim), {"$set": update})

    async def mark_authenticating(
        self, claim: Document, stripe_id: str, client_secret: str
    ) -> Document | None:
        """The intent waits for the buyer's authentication; None when the claim is gone."""
        doc: Document | None = await self.collection.find_one_and_update(
            self._held(claim),
            {
                "$set": {
                    "status": PaymentStatus.AUTHENTICATING.value,
                    "stripeId": stripe_id,
                    "clientSecret": client_secret,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def mark_paid(self, claim: Document, stripe_id: str, amount: int) -> Document | None:
        """Record the charge and publish `payment:created` in the same write; None when
        the claim is no longer held (another resolver recorded it first)."""
        event = PaymentCreatedEvent(
            id=str(claim["_id"]), order_id=claim["orderId"], stripe_id=stripe_id
        )
        return await self.outbox.update(
            self.collection,
            self._held(claim),
            {
                "$set": {
                    "status": PaymentStatus.PAID.value,
                    "stripeId": stripe_id,
                    "amount": amount,
                    "paidAt": utcnow(),
                }
            },
            [event],
        )

    async def mark_refund_due(self, payment: Document) -> Document | None:
        """A paid payment whose order ended cancelled: due for a refund now. The document
        (also when it already was due or refunded); None when it is not paid."""
        doc: Document | None = await self.collection.find_one_and_update(
            {"_id": payment["_id"], "status": PaymentStatus.PAID.value},
            {
                "$set": {
                    "status": PaymentStatus.REFUND_DUE.value,
                    "refundAttempts": 0,
                    "refundNextAt": utcnow(),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self.get(payment["_id"])
            if doc is not None and doc["status"] not in (
                PaymentStatus.REFUND_DUE,
                PaymentStatus.REFUNDED,
            ):
                return None
        return doc

    async def lease_refund(self, payment: Document, seconds: float) -> Document | None:
        """Take a due refund whose next try has come for one try, pushing its next try
        `seconds` out (so a concurrent resolver or reconciler round leaves it alone); None
        when it is not due now."""
        now = utcnow()
        doc: Document | None = await self.collection.find_one_and_update(
            {
                "_id": payment["_id"],
                "status": PaymentStatus.REFUND_DUE.value,
                "refundNextAt": {"$lte": now},
                "needsAttention": {"$ne": True},
            },
            {"$set": {"refundNextAt": now + timedelta(seconds=seconds)}},
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def refunds_due(self, limit: int = 100) -> list[Document]:
        """Payments due for a refund whose next try has come, oldest first."""
        cursor = self.collection.find(
            {
                "status": PaymentStatus.REFUND_DUE.value,
                "refundNextAt": {"$lte": utcnow()},
                "needsAttention": {"$ne": True},
            }
        ).sort("refundNextAt", 1)
        docs: list[Document] = await cursor.to_list(limit)
        return docs

    async def refund_failed(self, payment: Document, error: str, next_at: datetime | None) -> None:
        """Count a failed refund; `next_at` None: no more tries, a person must look."""
        update: Document = {"refundError": error[:500]}
        if next_at is None:
            update["needsAttention"] = True
        else:
            update["refundNextAt"] = next_at
        await self.collection.update_one(
            {"_id": payment["_id"], "status": PaymentStatus.REFUND_DUE.value},
            {"$set": update, "$inc": {"refundAttempts": 1}},
        )

    async def mark_refunded(self, payment: Document, refund_id: str) -> None:
        await self.collection.update_one(
            {
                "_id": payment["_id"],
                "status": {"$in": [PaymentStatus.PAID.value, PaymentStatus.REFUND_DUE.value]},
            },
            {
                "$set": {
                    "status": PaymentStatus.REFUNDED.value,
                    "refundId": refund_id,
                    "refundedAt": utcnow(),
                },
                "$unset": {"refundNextAt": "", "needsAttention": ""},
            },
        )

    @staticmethod
    def _held(claim: Document) -> Document:
        return {
            "_id": claim["_id"],
            "claimId": claim["claimId"],
            "status": {"$in": [status.value for status in HELD]},
        }


class StripeEvents:
    """Ids of the Stripe webhook events already processed (a replay changes nothing)."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def seen(self, event_id: str) -> bool:
        return await self.collection.find_one({"_id": event_id}) is not None

    async def record(self, event_id: str, event_type: str) -> None:
        # A concurrent delivery of the same event may have got there first.
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(
                {"_id": event_id, "type": event_type, "processedAt": utcnow()}
            )
