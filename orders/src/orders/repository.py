"""All database access of the orders service: orders and the ticket replicas, on
`Order` and `TicketReplica` records.

A record is converted from and to its document here and nowhere else. Every
check-and-write is one conditional single-document update (docs/SPEC.md §4) storing the
record a transition of `Order` gives, with the events built from that same record, and
answering the record as the write left it; it is retried from a fresh read when another
writer got there first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from orders.events.publishers import order_cancelled_event, order_created_event
from orders.models import (
    OPEN_STATUSES,
    CancelReason,
    Order,
    OrderedTicket,
    TicketReplica,
)
from ticketing_common.events import (
    EventPayload,
    OrderStatus,
    Outbox,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import Collection, Document, as_utc, utcnow
from ticketing_common.paging import Page, PageRequest, find_page
from ticketing_common.replicas import ReplicaUpdate, insert_replica

logger = logging.getLogger("orders")


class TicketReservedError(Exception):
    """Another order holds the ticket."""


class TooManyOpenOrdersError(Exception):
    """The user holds as many open orders as allowed."""


# The index names of the two unique rules an order's insert can break.
ONE_HOLDING_ORDER = "one_holding_order_per_ticket"
OPEN_ORDER_SLOTS = "open_order_slots"
# Orders are read without the events they still have to publish.
NO_OUTBOX = {"outbox": False}


def _replica_from_doc(doc: Document) -> TicketReplica:
    return TicketReplica(
        id=str(doc["_id"]),
        title=doc["title"],
        price_cents=doc["priceCents"],
        version=doc["version"],
        # Replicas stored before it was kept have had no edit since.
        details_version=doc.get("detailsVersion", 0),
    )


def _replica_state(replica: TicketReplica) -> Document:
    return {
        "title": replica.title,
        "priceCents": replica.price_cents,
        "version": replica.version,
        "detailsVersion": replica.details_version,
    }


def _order_from_doc(doc: Document) -> Order:
    ticket = doc["ticket"]
    return Order(
        id=str(doc["_id"]),
        user_id=doc["userId"],
        status=OrderStatus(doc["status"]),
        expires_at=as_utc(doc["expiresAt"]),
        ticket=OrderedTicket(
            id=str(ticket["id"]),
            title=ticket["title"],
            price_cents=ticket["priceCents"],
            version=ticket["version"],
        ),
        version=doc["version"],
        cancel_reason=doc.get("cancelReason"),
    )


def _order_state(order: Order) -> Document:
    """The fields a change of `order` sets. `holdsTicket` follows the status (see
    `Orders.create_indexes`): every order but a cancelled one holds its ticket."""
    state: Document = {
        "status": order.status.value,
        "holdsTicket": order.status is not OrderStatus.CANCELLED,
        "version": order.version,
    }
    if order.cancel_reason is not None:
        state["cancelReason"] = order.cancel_reason
    return state


def _order_to_doc(order: Order, slot: int) -> Document:
    ticket = order.ticket
    return {
        "_id": ObjectId(order.id),
        "userId": order.user_id,
        "openSlot": slot,
        "expiresAt": order.expires_at,
        "ticket": {
            "id": ObjectId(ticket.id),
            "title": ticket.title,
            "priceCents": ticket.price_cents,
            "version": ticket.version,
        },
        "createdAt": utcnow(),
        **_order_state(order),
    }


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of orders; `links` names the next page."""

    orders: list[Order]
    links: Page


class TicketReplicas:
    """The tickets this service knows, each at its tickets-service version."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def add(self, event: TicketCreatedEvent) -> bool:
        """Store the replica of a new ticket; False when it is already there."""
        replica = TicketReplica(
            id=event.id,
            title=event.title,
            price_cents=to_cents(event.price),
            version=event.version,
            details_version=event.version,
        )
        return await insert_replica(
            self.collection, {"_id": ObjectId(replica.id), **_replica_state(replica)}
        )

    async def apply_update(self, event: TicketUpdatedEvent) -> ReplicaUpdate:
        """Apply `event` if the replica is at the version just before it
        (`TicketReplica.updated` says what changes)."""
        ticket_id = ObjectId(event.id)
        while True:
            current = await self.get(ticket_id)
            if current is None or current.version < event.version - 1:
                return ReplicaUpdate.NOT_YET
            if current.version >= event.version:
                return ReplicaUpdate.ALREADY_APPLIED
            after = current.updated(event.title, to_cents(event.price), event.version)
            # Pinned to the version read, so `updated` compared with exactly that state; a
            # miss means another delivery applied it meanwhile (read again to say so).
            updated = await self.collection.find_one_and_update(
                {"_id": ticket_id, "version": current.version},
                {"$set": _replica_state(after)},
            )
            if updated is not None:
                return ReplicaUpdate.APPLIED

    async def get(self, ticket_id: ObjectId | str) -> TicketReplica | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(ticket_id)})
        return None if doc is None else _replica_from_doc(doc)


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

    async def create(self, user_id: str, ticket: TicketReplica, expires_at: datetime) -> Order:
        """Insert a `created` order holding `ticket` and publish `order:created`;
        TicketReservedError when another order holds it, TooManyOpenOrdersError when the
        user already holds the most open orders allowed."""
        order = Order(
            id=str(ObjectId()),
            user_id=user_id,
            status=OrderStatus.CREATED,
            expires_at=expires_at,
            ticket=ticket.ordered(),
            version=0,
        )
        while True:
            doc = _order_to_doc(order, await self._free_slot(user_id))
            try:
                stored = await self.outbox.insert(
                    self.collection, doc, [order_created_event(order)]
                )
            except DuplicateKeyError as exc:
                if not _took_slot(exc):
                    raise TicketReservedError(ticket.id) from None
                # A concurrent order of this user took the slot first: pick again.
            else:
                return _order_from_doc(stored)

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

    async def get(self, order_id: ObjectId | str) -> Order | None:
        doc: Document | None = await self.collection.find_one(
            {"_id": ObjectId(order_id)}, projection=NO_OUTBOX
        )
        return None if doc is None else _order_from_doc(doc)

    async def for_user(self, user_id: str, request: PageRequest) -> OrderPage:
        """One page of the user's orders, oldest first."""
        page = await find_page(self.collection, {"userId": user_id}, request, NO_OUTBOX)
        return OrderPage([_order_from_doc(doc) for doc in page.docs], page)

    async def due_for_expiry(self, before: datetime, limit: int) -> list[Order]:
        """Up to `limit` `created` orders whose `expiresAt` is at or before `before`,
        the longest overdue first."""
        docs: list[Document] = (
            await self.collection.find(
                {"status": OrderStatus.CREATED.value, "expiresAt": {"$lte": before}},
                projection=NO_OUTBOX,
            )
            .sort([("expiresAt", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [_order_from_doc(doc) for doc in docs]

    async def cancel(
        self,
        order_id: str,
        from_statuses: tuple[OrderStatus, ...],
        reason: CancelReason,
        *,
        current: Order | None = None,
    ) -> tuple[Order | None, bool]:
        """Cancel the order if its status is one of `from_statuses`, publishing
        `order:cancelled`; `current` is the order as the caller just read it, to start
        from. Returns the order as it now is (None when unknown) and whether this call
        changed it."""
        return await self._transition(
            order_id, from_statuses, lambda order: order.cancelled(reason), current
        )

    async def cancel_stale(self, replica: TicketReplica) -> int:
        """Cancel every open order for the ticket priced before its title or price last
        changed (`replica.details_version`); the count cancelled.

        tickets refuses to reserve exactly these orders (docs/SPEC.md §4): such a change
        happens only while no order holds the ticket, so an order priced at an earlier
        version was not reserved before it and will not be after. Idempotent: a cancelled
        order no longer matches."""
        docs: list[Document] = await self.collection.find(
            {
                "ticket.id": ObjectId(replica.id),
                "status": {"$in": [status.value for status in OPEN_STATUSES]},
                "ticket.version": {"$lt": replica.details_version},
            },
            projection=NO_OUTBOX,
        ).to_list(None)
        cancelled = 0
        for order in map(_order_from_doc, docs):
            _order, changed = await self.cancel(
                order.id, OPEN_STATUSES, CancelReason.TICKET_CHANGED, current=order
            )
            if changed:
                cancelled += 1
                logger.info(
                    "order %s priced at ticket %s v%d, changed at v%d: cancelled",
                    order.id,
                    replica.id,
                    order.ticket.version,
                    replica.details_version,
                )
        return cancelled

    async def expire(
        self, order_id: str, *, current: Order | None = None
    ) -> tuple[Order | None, bool]:
        """The order's time ran out (`expiration:complete`, or the sweep when that never
        came): cancel it only while it is still `created`; a paid or already cancelled
        order is left alone. Same return as `cancel`."""
        return await self.cancel(
            order_id, (OrderStatus.CREATED,), CancelReason.EXPIRED, current=current
        )

    async def complete(self, order_id: str) -> tuple[Order | None, bool]:
        """Mark an open order `complete` (paid). docs/SPEC.md §4 has no event for it, so
        nothing is published. Same return as `cancel`."""
        return await self._transition(order_id, OPEN_STATUSES, Order.completed)

    async def _transition(
        self,
        order_id: str,
        from_statuses: tuple[OrderStatus, ...],
        transition: Callable[[Order], Order],
        current: Order | None = None,
    ) -> tuple[Order | None, bool]:
        if current is None:
            current = await self.get(order_id)
        while current is not None and current.status in from_statuses:
            after = transition(current)
            events: list[EventPayload] = (
                [order_cancelled_event(after)] if after.status is OrderStatus.CANCELLED else []
            )
            # Conditional on the version just read, so `after` is exactly what is stored
            # and a concurrent change makes this match nothing: read again and decide
            # again. Leaving an open status frees the user's slot (the cap on open orders).
            query = {"_id": ObjectId(current.id), "version": current.version}
            update = {"$set": _order_state(after), "$unset": {"openSlot": ""}}
            updated = await self.outbox.update(self.collection, query, update, events)
            if updated is not None:
                return _order_from_doc(updated), True
            current = await self.get(order_id)
        return current, False


def _took_slot(exc: DuplicateKeyError) -> bool:
    """Whether the duplicate key is a user's open-order slot (else: the ticket's hold)."""
    details = exc.details or {}
    return "openSlot" in (details.get("keyPattern") or {}) or OPEN_ORDER_SLOTS in str(
        details.get("errmsg", "")
    )
