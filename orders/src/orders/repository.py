"""All database access of the orders service: orders and the ticket replicas.

Every check-and-write is one conditional single-document update (docs/SPEC.md §4), retried
from a fresh read when another writer got there first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from orders.events.publishers import order_cancelled_event, order_created_event
from ticketing_common.events import (
    OrderStatus,
    Outbox,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import Collection, Document, utcnow, versioned
from ticketing_common.replicas import ReplicaUpdate, apply_in_order, insert_replica

# Statuses an order may leave for `cancelled` (a user's cancel) or `complete` (a payment).
OPEN_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT)


class TicketReservedError(Exception):
    """Another order holds the ticket."""


class TicketReplicas:
    """The tickets this service knows, each at its tickets-service version."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def add(self, event: TicketCreatedEvent) -> bool:
        """Store the replica of a new ticket; False when it is already there."""
        doc = {
            "_id": ObjectId(event.id),
            "title": event.title,
            "priceCents": to_cents(event.price),
            "version": event.version,
        }
        return await insert_replica(self.collection, doc)

    async def apply_update(self, event: TicketUpdatedEvent) -> ReplicaUpdate:
        """Apply `event` if the replica is at the version just before it."""
        changes = {"title": event.title, "priceCents": to_cents(event.price)}
        return await apply_in_order(self.collection, ObjectId(event.id), event.version, changes)

    async def get(self, ticket_id: ObjectId) -> Document | None:
        doc: Document | None = await self.collection.find_one({"_id": ticket_id})
        return doc

    async def many(self, ticket_ids: list[ObjectId]) -> dict[ObjectId, Document]:
        docs: list[Document] = await self.collection.find({"_id": {"$in": ticket_ids}}).to_list(
            None
        )
        return {doc["_id"]: doc for doc in docs}


class Orders:
    """Orders, written together with their events through the outbox."""

    def __init__(self, collection: Collection, outbox: Outbox) -> None:
        self.collection = collection
        self.outbox = outbox

    async def create_indexes(self) -> None:
        # The reservation: at most one holding order per ticket, enforced by the database
        # in the order's own insert, so concurrent requests cannot both win. The partial
        # filter is an equality on `holdsTicket` (kept in step with `status` by every write
        # here) rather than `status: {$in: ...}`, which MongoDB accepts in partial
        # indexes only from 6.0 on.
        await self.collection.create_index(
            [("ticket.id", ASCENDING)],
            unique=True,
            partialFilterExpression={"holdsTicket": True},
            name="one_holding_order_per_ticket",
        )
        await self.collection.create_index(
            [("userId", ASCENDING), ("createdAt", ASCENDING), ("_id", ASCENDING)]
        )

    async def create(self, user_id: str, ticket: Document, expires_at: datetime) -> Document:
        """Insert a `created` order holding `ticket` and publish `order:created`;
        TicketReservedError when another order holds it."""
        doc: Document = {
            "_id": ObjectId(),
            "userId": user_id,
            "status": OrderStatus.CREATED.value,
            "holdsTicket": True,
            "expiresAt": expires_at,
            # The ticket as it was ordered; reads show the current replica.
            "ticket": {
                "id": ticket["_id"],
                "title": ticket["title"],
                "priceCents": ticket["priceCents"],
                "version": ticket["version"],
            },
            "version": 0,
            "createdAt": utcnow(),
        }
        try:
            return await self.outbox.insert(self.collection, doc, [order_created_event(doc)])
        except DuplicateKeyError:
            raise TicketReservedError(str(ticket["_id"])) from None

    async def get(self, order_id: ObjectId) -> Document | None:
        doc: Document | None = await self.collection.find_one(
            {"_id": order_id}, projection={"outbox": False}
        )
        return doc

    async def for_user(self, user_id: str) -> list[Document]:
        """The user's orders, oldest first."""
        docs: list[Document] = (
            await self.collection.find({"userId": user_id}, projection={"outbox": False})
            .sort([("createdAt", ASCENDING), ("_id", ASCENDING)])
            .to_list(None)
        )
        return docs

    async def cancel(
        self,
        order_id: ObjectId,
        from_statuses: tuple[OrderStatus, ...],
        *,
        current: Document | None = None,
    ) -> tuple[Document | None, bool]:
        """Cancel the order if its status is one of `from_statuses`, bumping its version
        and publishing `order:cancelled`; `current` is the order as the caller just read
        it, to start from. Returns the order as it now is (None when unknown) and whether
        this call changed it."""
        return await self._transition(
            order_id,
            from_statuses,
            {"status": OrderStatus.CANCELLED.value, "holdsTicket": False},
            cancelled=True,
            current=current,
        )

    async def complete(self, order_id: ObjectId) -> tuple[Document | None, bool]:
        """Mark an open order `complete` (paid), bumping its version. docs/SPEC.md §4 has no
        event for it, so nothing is published."""
        return await self._transition(
            order_id, OPEN_STATUSES, {"status": OrderStatus.COMPLETE.value}, cancelled=False
        )

    async def _transition(
        self,
        order_id: ObjectId,
        from_statuses: tuple[OrderStatus, ...],
        changes: dict[str, Any],
        *,
        cancelled: bool,
        current: Document | None = None,
    ) -> tuple[Document | None, bool]:
        allowed = {status.value for status in from_statuses}
        if current is None:
            current = await self.get(order_id)
        while current is not None and current["status"] in allowed:
            # Conditional on the version just read, so the event's version is exact and a
            # concurrent change makes this match nothing: read again and decide again.
            query, update = versioned(order_id, current["version"], {"$set": changes})
            events = [order_cancelled_event(current, current["version"] + 1)] if cancelled else []
            updated = await self.outbox.update(self.collection, query, update, events)
            if updated is not None:
                return updated, True
            current = await self.get(order_id)
        return current, False
