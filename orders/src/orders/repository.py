"""The queries of the orders service, on `Order` and `TicketReplica` records.

A record is converted from and to its document here and nowhere else. Every change is
one conditional single-document write (docs/SPEC.md §4) pinned to the version it was
computed from, storing the record `service` computed (an order together with the events
built from that same record, through the outbox) and answering the record as the write
left it. Deciding, and reading again after a miss, is `service`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from orders.models import OPEN_STATUSES, Order, OrderedTicket, TicketReplica
from ticketing_common.events import EventPayload, OrderStatus, Outbox
from ticketing_common.mongo import Collection, Document, as_utc, at_version, utcnow
from ticketing_common.paging import Page, PageRequest, find_page
from ticketing_common.replicas import insert_replica


class TicketReservedError(Exception):
    """Another order holds the ticket."""


class TooManyOpenOrdersError(Exception):
    """The user holds as many open orders as allowed: `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


# The index names of the two unique rules an order's insert can break.
ONE_HOLDING_ORDER = "one_holding_order_per_ticket"
OPEN_ORDER_SLOTS = "open_order_slots"
# Orders are read without the events they still have to publish.
NO_OUTBOX = {"outbox": False}


def _replica_from_doc(doc: Document) -> TicketReplica:
    return TicketReplica(
        id=str(doc["_id"]),
        version=doc["version"],
        # Replicas stored before it was kept have had no edit since.
        details_version=doc.get("detailsVersion", 0),
        title=doc["title"],
        price_cents=doc["priceCents"],
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
        version=doc["version"],
        cancel_reason=doc.get("cancelReason"),
        ticket=OrderedTicket(
            id=str(ticket["id"]),
            title=ticket["title"],
            price_cents=ticket["priceCents"],
            version=ticket["version"],
        ),
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

    async def insert(self, replica: TicketReplica) -> bool:
        """Store the replica of a new ticket; False when it is already there."""
        doc = {"_id": ObjectId(replica.id), **_replica_state(replica)}
        return await insert_replica(self.collection, doc)

    async def get(self, ticket_id: ObjectId | str) -> TicketReplica | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(ticket_id)})
        return None if doc is None else _replica_from_doc(doc)

    async def replace(self, read: TicketReplica, after: TicketReplica) -> TicketReplica | None:
        """Store `after` if the replica is still at `read`'s version; the replica as
        written, or None when another delivery came first."""
        doc: Document | None = await self.collection.find_one_and_update(
            at_version(read.id, read.version),
            {"$set": _replica_state(after)},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _replica_from_doc(doc)


@dataclass(frozen=True)
class Orders:
    """Orders, written together with their events through the outbox; a user's open
    orders are at most `max_open_per_user`."""

    collection: Collection
    outbox: Outbox
    max_open_per_user: int

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

    async def insert(self, order: Order, events: Iterable[EventPayload]) -> Order:
        """Store a new open order with `events`; the order as stored. TicketReservedError
        when another order holds its ticket, TooManyOpenOrdersError when the user already
        holds the most open orders allowed."""
        while True:
            doc = _order_to_doc(order, await self._free_slot(order.user_id))
            try:
                return _order_from_doc(await self.outbox.insert(self.collection, doc, events))
            except DuplicateKeyError as exc:
                if not _took_slot(exc):
                    raise TicketReservedError(order.ticket.id) from None
                # A concurrent order of this user took the slot first: pick again.

    async def _free_slot(self, user_id: str) -> int:
        """The lowest slot none of the user's open orders takes; TooManyOpenOrdersError
        when they all are."""
        taken: list[Document] = await self.collection.find(
            {"userId": user_id, "openSlot": {"$exists": True}}, projection={"openSlot": True}
        ).to_list(None)
        free = set(range(self.max_open_per_user)) - {doc["openSlot"] for doc in taken}
        if not free:
            raise TooManyOpenOrdersError(self.max_open_per_user)
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
        return await self._find(
            {"status": OrderStatus.CREATED.value, "expiresAt": {"$lte": before}},
            sort=[("expiresAt", ASCENDING), ("_id", ASCENDING)],
            limit=limit,
        )

    async def open_priced_before(self, ticket_id: str, version: int) -> list[Order]:
        """The open orders for the ticket priced at a version before `version`."""
        return await self._find(
            {
                "ticket.id": ObjectId(ticket_id),
                "status": {"$in": [status.value for status in OPEN_STATUSES]},
                "ticket.version": {"$lt": version},
            }
        )

    async def replace(
        self, read: Order, after: Order, events: Iterable[EventPayload]
    ) -> Order | None:
        """Store `after` with `events` if the order is still at `read`'s version; the
        order as written, or None when another write came first. Leaving an open status
        frees the user's slot (the cap on open orders)."""
        query = at_version(read.id, read.version)
        update: Document = {"$set": _order_state(after)}
        if not after.is_open:
            update["$unset"] = {"openSlot": ""}
        doc = await self.outbox.update(self.collection, query, update, events)
        return None if doc is None else _order_from_doc(doc)

    async def _find(
        self, query: Document, sort: list[tuple[str, int]] | None = None, limit: int = 0
    ) -> list[Order]:
        cursor = self.collection.find(query, projection=NO_OUTBOX)
        if sort is not None:
            cursor = cursor.sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return [_order_from_doc(doc) for doc in await cursor.to_list(None)]


def _took_slot(exc: DuplicateKeyError) -> bool:
    """Whether the duplicate key is a user's open-order slot (else: the ticket's hold)."""
    details = exc.details or {}
    return "openSlot" in (details.get("keyPattern") or {}) or OPEN_ORDER_SLOTS in str(
        details.get("errmsg", "")
    )
