"""All database access of the orders service: orders and the ticket replicas.

Every check-and-write is one conditional single-document update (docs/SPEC.md §4), retried
from a fresh read when another writer got there first.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
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
from ticketing_common.paging import Page, PageRequest, find_page
from ticketing_common.replicas import ReplicaUpdate, insert_replica

logger = logging.getLogger("orders")

# Statuses an order may leave for `cancelled` (a user's cancel) or `complete` (a payment).
OPEN_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT)


class CancelReason(StrEnum):
    """Why an order was cancelled (`cancelReason`, shown with a cancelled order)."""

    BY_BUYER = "Cancelled by the buyer"
    EXPIRED = "Not paid in time"
    TICKET_CHANGED = (
        "The seller changed the ticket's price or title after it was ordered; please order it again"
    )


class TicketReservedError(Exception):
    """Another order holds the ticket."""


class TooManyOpenOrdersError(Exception):
    """The user holds as many open orders as allowed."""


# The index names of the two unique rules an order's insert can break.
ONE_HOLDING_ORDER = "one_holding_order_per_ticket"
OPEN_ORDER_SLOTS = "open_order_slots"


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
            "detailsVersion": event.version,
        }
        return await insert_replica(self.collection, doc)

    async def apply_update(self, event: TicketUpdatedEvent) -> ReplicaUpdate:
        """Apply `event` if the replica is at the version just before it.

        `detailsVersion` becomes the event's version when title or price differ from the
        version before (a seller's edit; a reservation or release changes neither), the
        same rule tickets keeps, so both services agree on which orders a change made
        stale (`Orders.cancel_stale`)."""
        ticket_id = ObjectId(event.id)
        changes: Document = {"title": event.title, "priceCents": to_cents(event.price)}
        while True:
            current = await self.get(ticket_id)
            if current is None or current["version"] < event.version - 1:
                return ReplicaUpdate.NOT_YET
            if current["version"] >= event.version:
                return ReplicaUpdate.ALREADY_APPLIED
            edited = (current["title"], current["priceCents"]) != (
                changes["title"],
                changes["priceCents"],
            )
            details = {"detailsVersion": event.version} if edited else {}
            # Pinned to the version read, so `edited` compared with exactly that state; a
            # miss means another delivery applied it meanwhile (read again to say so).
            updated = await self.collection.find_one_and_update(
                {"_id": ticket_id, "version": event.version - 1},
                {"$set": {**changes, **details, "version": event.version}},
            )
            if updated is not None:
                return ReplicaUpdate.APPLIED

    @staticmethod
    def details_version(replica: Document) -> int:
        """The version of the replica's last change of title or price."""
        return int(replica.get("detailsVersion", 0))

    async def get(self, ticket_id: ObjectId) -> Document | None:
        doc: Document | None = await self.collection.find_one({"_id": ticket_id})
        return doc


class Orders:
    """Orders, written together with their events through the outbox."""

    def __init__(self, collection: Collection, outbox: Outbox, max_open_per_user: int) -> None:
        self.collection = collection
        self.outbox = outbox
        self.max_open_per_user = max_open_per_user

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
            name=ONE_HOLDING_ORDER,
        )
        # The cap on open orders per user, enforced the same way: an open order takes one
        # of the user's MAX_OPEN_ORDERS_PER_USER numbered slots (`openSlot`, unset when it
        # is cancelled or paid), and two inserts cannot take one slot.
        await self.collection.create_index(
            [("userId", ASCENDING), ("openSlot", ASCENDING)],
            unique=True,
            partialFilterExpression={"openSlot": {"$exists": True}},
            name=OPEN_ORDER_SLOTS,
        )
        # The list's query: one user's orders in `_id` order, paged by `_id`
        # (ticketing_common.paging).
        await self.collection.create_index([("userId", ASCENDING), ("_id", ASCENDING)])
        # The expiry sweep's query: open orders by due time.
        await self.collection.create_index([("status", ASCENDING), ("expiresAt", ASCENDING)])

    async def create(self, user_id: str, ticket: Document, expires_at: datetime) -> Document:
        """Insert a `created` order holding `ticket` and publish `order:created`;
        TicketReservedError when another order holds it, TooManyOpenOrdersError when the
        user already holds the most open orders allowed."""
        while True:
            slot = await self._free_slot(user_id)
            doc: Document = {
                "_id": ObjectId(),
                "userId": user_id,
                "status": OrderStatus.CREATED.value,
                "holdsTicket": True,
                "openSlot": slot,
                "expiresAt": expires_at,
                # The ticket as it was ordered, price included: what the order shows and
                # payments charges. `version` is the ticket version it was priced at.
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
            except DuplicateKeyError as exc:
                if not _took_slot(exc):
                    raise TicketReservedError(str(ticket["_id"])) from None
                # A concurrent order of this user took the slot first: pick again.

    async def _free_slot(self, user_id: str) -> int:
        """The lowest slot none of the user's open orders takes; TooManyOpenOrdersError
        when they all are."""
        taken: list[Document] = await self.collection.find(
            {"userId": user_id, "openSlot": {"$exists": True}}, projection={"openSlot": True}
        ).to_list(None)
        free = set(range(self.max_open_per_user)) - {doc["openSlot"] for doc in taken}
        if not free:
            raise TooManyOpenOrdersError(user_id)
        return min(free)

    async def get(self, order_id: ObjectId) -> Document | None:
        doc: Document | None = await self.collection.find_one(
            {"_id": order_id}, projection={"outbox": False}
        )
        return doc

    async def for_user(self, user_id: str, request: PageRequest) -> Page:
        """One page of the user's orders, oldest first."""
        return await find_page(
            self.collection, {"userId": user_id}, request, projection={"outbox": False}
        )

    async def due_for_expiry(self, before: datetime, limit: int) -> list[Document]:
        """Up to `limit` `created` orders whose `expiresAt` is at or before `before`,
        the longest overdue first."""
        docs: list[Document] = (
            await self.collection.find(
                {"status": OrderStatus.CREATED.value, "expiresAt": {"$lte": before}},
                projection={"outbox": False},
            )
            .sort([("expiresAt", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return docs

    async def cancel(
        self,
        order_id: ObjectId,
        from_statuses: tuple[OrderStatus, ...],
        reason: CancelReason,
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
            {
                "status": OrderStatus.CANCELLED.value,
                "holdsTicket": False,
                "cancelReason": reason.value,
            },
            cancelled=True,
            current=current,
        )

    async def cancel_stale(self, ticket_id: ObjectId, details_version: int) -> int:
        """Cancel every open order for the ticket priced before its title or price last
        changed (at `details_version`); the count cancelled.

        tickets refuses to reserve exactly these orders (docs/SPEC.md §4): such a change
        happens only while no order holds the ticket, so an order priced at an earlier
        version was not reserved before it and will not be after. Idempotent: a cancelled
        order no longer matches."""
        stale: list[Document] = await self.collection.find(
            {
                "ticket.id": ticket_id,
                "status": {"$in": [status.value for status in OPEN_STATUSES]},
                "ticket.version": {"$lt": details_version},
            },
            projection={"outbox": False},
        ).to_list(None)
        cancelled = 0
        for order in stale:
            _order, changed = await self.cancel(
                order["_id"], OPEN_STATUSES, CancelReason.TICKET_CHANGED, current=order
            )
            if changed:
                cancelled += 1
                logger.info(
                    "order %s priced at ticket %s v%d, changed at v%d: cancelled",
                    order["_id"],
                    ticket_id,
                    order["ticket"]["version"],
                    details_version,
                )
        return cancelled

    async def expire(
        self, order_id: ObjectId, *, current: Document | None = None
    ) -> tuple[Document | None, bool]:
        """The order's time ran out (`expiration:complete`, or the sweep when that never
        came): cancel it only while it is still `created`; a paid or already cancelled
        order is left alone. Same return as `cancel`."""
        return await self.cancel(
            order_id, (OrderStatus.CREATED,), CancelReason.EXPIRED, current=current
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
            # Leaving an open status frees the user's slot (the cap on open orders).
            query, update = versioned(
                order_id, current["version"], {"$set": changes, "$unset": {"openSlot": ""}}
            )
            events = [order_cancelled_event(current, current["version"] + 1)] if cancelled else []
            updated = await self.outbox.update(self.collection, query, update, events)
            if updated is not None:
                return updated, True
            current = await self.get(order_id)
        return current, False


def _took_slot(exc: DuplicateKeyError) -> bool:
    """Whether the duplicate key is a user's open-order slot (else: the ticket's hold)."""
    details = exc.details or {}
    return "openSlot" in (details.get("keyPattern") or {}) or OPEN_ORDER_SLOTS in str(
        details.get("errmsg", "")
    )
