"""All database access of the payments service: order replicas and payments, read and
written as the records of `models` (converted from their documents here and nowhere else).

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
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from payments.models import HELD, Attempt, OrderReplica, Payment, PaymentStatus
from ticketing_common.events import EventPayload, OrderStatus, Outbox
from ticketing_common.mongo import Collection, Document, as_utc, utcnow
from ticketing_common.replicas import ReplicaUpdate, apply_in_order, insert_replica


def _replica_from_doc(doc: Document) -> OrderReplica:
    return OrderReplica(
        id=str(doc["_id"]),
        status=OrderStatus(doc["status"]),
        user_id=doc["userId"],
        price_cents=doc["priceCents"],
        expires_at=as_utc(doc["expiresAt"]),
        version=doc["version"],
    )


def _replica_to_doc(replica: OrderReplica) -> Document:
    return {
        "_id": ObjectId(replica.id),
        "status": replica.status.value,
        "userId": replica.user_id,
        "priceCents": replica.price_cents,
        "expiresAt": replica.expires_at,
        "version": replica.version,
    }


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _payment_from_doc(doc: Document) -> Payment:
    attempt = doc.get("attempt")
    return Payment(
        id=str(doc["_id"]),
        status=PaymentStatus(doc["status"]),
        order_id=doc["orderId"],
        user_id=doc["userId"],
        claim_id=doc["claimId"],
        claimed_at=as_utc(doc["claimedAt"]),
        attempt=None if attempt is None else Attempt(attempt["paymentMethod"], attempt["amount"]),
        stripe_id=doc.get("stripeId"),
        client_secret=doc.get("clientSecret"),
        amount_cents=doc.get("amount"),
        paid_at=_optional_utc(doc.get("paidAt")),
        refund_attempts=int(doc.get("refundAttempts", 0)),
        refund_next_at=_optional_utc(doc.get("refundNextAt")),
        refund_error=doc.get("refundError"),
        needs_attention=bool(doc.get("needsAttention", False)),
        refund_id=doc.get("refundId"),
        refunded_at=_optional_utc(doc.get("refundedAt")),
    )


def _payment_or_none(doc: Document | None) -> Payment | None:
    return None if doc is None else _payment_from_doc(doc)


class OrderReplicas:
    """The orders this service knows, each at its orders-service version."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def add(self, replica: OrderReplica) -> bool:
        """Store the replica of a new order; False when it is already there."""
        return await insert_replica(self.collection, _replica_to_doc(replica))

    async def apply_cancelled(self, order_id: str, version: int) -> ReplicaUpdate:
        """Mark the order cancelled at `version` if the replica is at the version before."""
        return await apply_in_order(
            self.collection,
            ObjectId(order_id),
            version,
            {"status": OrderStatus.CANCELLED.value},
        )

    async def get(self, order_id: str) -> OrderReplica | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(order_id)})
        return None if doc is None else _replica_from_doc(doc)


class Payments:
    """Payments and the claims that precede them (see the module docstring)."""

    def __init__(self, collection: Collection, outbox: Outbox) -> None:
        self.collection = collection
        self.outbox = outbox

    async def create_indexes(self) -> None:
        await self.collection.create_index("orderId", unique=True, name="one_payment_per_order")

    async def get(self, payment_id: ObjectId | str) -> Payment | None:
        return _payment_or_none(await self.collection.find_one({"_id": ObjectId(payment_id)}))

    async def for_order(self, order_id: str) -> Payment | None:
        return _payment_or_none(await self.collection.find_one({"orderId": order_id}))

    async def claim(self, order_id: str, user_id: str) -> Payment | None:
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
        return _payment_from_doc(doc)

    async def take_over(self, order_id: str, timeout: float) -> Payment | None:
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
        return _payment_or_none(doc)

    async def record_attempt(
        self, claim: Payment, payment_method: str, amount_cents: int
    ) -> Payment | None:
        """Store what is about to be sent to Stripe, so a replay sends exactly the same."""
        doc: Document | None = await self.collection.find_one_and_update(
            self._held(claim),
            {"$set": {"attempt": {"paymentMethod": payment_method, "amount": amount_cents}}},
            return_document=ReturnDocument.AFTER,
        )
        return _payment_or_none(doc)

    async def release(self, claim: Payment) -> None:
        """Drop a claim whose attempt did not charge: the order is payable again."""
        await self.collection.delete_one(self._held(claim))

    async def mark_unknown(self, claim: Payment, stripe_id: str | None = None) -> None:
        update: Document = {"status": PaymentStatus.UNKNOWN.value}
        if stripe_id is not None:
            update["stripeId"] = stripe_id
        await self.collection.update_one(self._held(claim), {"$set": update})

    async def mark_authenticating(
        self, claim: Payment, stripe_id: str, client_secret: str
    ) -> Payment | None:
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
        return _payment_or_none(doc)

    async def mark_paid(
        self, claim: Payment, paid: Payment, events: Iterable[EventPayload]
    ) -> Payment | None:
        """Store `paid` (`claim.paid(...)`) with `events` (its `payment:created`) in the
        same write if `claim` still holds the order; None when it no longer does (another
        resolver recorded it first)."""
        doc = await self.outbox.update(
            self.collection,
            self._held(claim),
            {
                "$set": {
                    "status": paid.status.value,
                    "stripeId": paid.stripe_id,
                    "amount": paid.amount_cents,
                    "paidAt": paid.paid_at,
                }
            },
            events,
        )
        return _payment_or_none(doc)

    async def mark_refund_due(self, payment: Payment) -> Payment | None:
        """A paid payment whose order ended cancelled: due for a refund now. The payment
        (also when it already was due or refunded); None when it is not paid."""
        doc: Document | None = await self.collection.find_one_and_update(
            {"_id": ObjectId(payment.id), "status": PaymentStatus.PAID.value},
            {
                "$set": {
                    "status": PaymentStatus.REFUND_DUE.value,
                    "refundAttempts": 0,
                    "refundNextAt": utcnow(),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return _payment_from_doc(doc)
        current = await self.get(payment.id)
        if current is None or current.status not in (
            PaymentStatus.REFUND_DUE,
            PaymentStatus.REFUNDED,
        ):
            return None
        return current

    async def lease_refund(self, payment: Payment, seconds: float) -> Payment | None:
        """Take a due refund whose next try has come for one try, pushing its next try
        `seconds` out (so a concurrent resolver or reconciler round leaves it alone); None
        when it is not due now."""
        now = utcnow()
        doc: Document | None = await self.collection.find_one_and_update(
            {
                "_id": ObjectId(payment.id),
                "status": PaymentStatus.REFUND_DUE.value,
                "refundNextAt": {"$lte": now},
                "needsAttention": {"$ne": True},
            },
            {"$set": {"refundNextAt": now + timedelta(seconds=seconds)}},
            return_document=ReturnDocument.AFTER,
        )
        return _payment_or_none(doc)

    async def refunds_due(self, limit: int = 100) -> list[Payment]:
        """Payments due for a refund whose next try has come, oldest first."""
        cursor = self.collection.find(
            {
                "status": PaymentStatus.REFUND_DUE.value,
                "refundNextAt": {"$lte": utcnow()},
                "needsAttention": {"$ne": True},
            }
        ).sort("refundNextAt", 1)
        docs: list[Document] = await cursor.to_list(limit)
        return [_payment_from_doc(doc) for doc in docs]

    async def refund_failed(self, payment: Payment, error: str, next_at: datetime | None) -> None:
        """Count a failed refund; `next_at` None: no more tries, a person must look."""
        update: Document = {"refundError": error[:500]}
        if next_at is None:
            update["needsAttention"] = True
        else:
            update["refundNextAt"] = next_at
        await self.collection.update_one(
            {"_id": ObjectId(payment.id), "status": PaymentStatus.REFUND_DUE.value},
            {"$set": update, "$inc": {"refundAttempts": 1}},
        )

    async def mark_refunded(self, payment: Payment, refund_id: str) -> None:
        await self.collection.update_one(
            {
                "_id": ObjectId(payment.id),
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
    def _held(claim: Payment) -> Document:
        return {
            "_id": ObjectId(claim.id),
            "claimId": claim.claim_id,
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
