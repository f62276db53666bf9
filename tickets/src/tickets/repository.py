"""The queries of the tickets service, on `Ticket` records.

A record is converted from and to its document here and nowhere else. Every change of
a ticket is one conditional single-document write pinned to the version it was computed
from, storing the record `service` computed together with the events built from that
same record (the outbox), and answering the ticket as the write left it. Deciding, and
reading again after a miss, is `service`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bson import ObjectId
from pymongo import ASCENDING

from ticketing_common.events import EventPayload, Outbox
from ticketing_common.mongo import Collection, Document, at_version, utcnow
from ticketing_common.paging import Page, PageRequest, find_page
from tickets.models import Ticket


def _from_doc(doc: Document) -> Ticket:
    return Ticket(
        id=str(doc["_id"]),
        title=doc["title"],
        price_cents=doc["priceCents"],
        user_id=doc["userId"],
        version=doc["version"],
        order_id=doc.get("orderId"),
        cancelled_order_ids=tuple(doc.get("cancelledOrderIds") or ()),
        details_version=doc.get("detailsVersion", 0),
    )


def _state(ticket: Ticket) -> Document:
    """The fields a change of `ticket` sets (the cancelled orders are only pushed: they
    also change without a new version, see `Tickets.record_cancelled`)."""
    return {
        "title": ticket.title,
        "priceCents": ticket.price_cents,
        "orderId": ticket.order_id,
        "detailsVersion": ticket.details_version,
        "version": ticket.version,
    }


def _to_doc(ticket: Ticket) -> Document:
    return {
        "_id": ObjectId(ticket.id),
        "userId": ticket.user_id,
        **_state(ticket),
        "cancelledOrderIds": list(ticket.cancelled_order_ids),
        "createdAt": utcnow(),
    }


@dataclass(frozen=True, slots=True)
class TicketPage:
    """One page of tickets; `links` names the next page."""

    tickets: list[Ticket]
    links: Page


class Tickets:
    def __init__(self, collection: Collection, outbox: Outbox, cancelled_kept: int) -> None:
        self.collection = collection
        self.outbox = outbox
        self.cancelled_kept = cancelled_kept

    async def create_indexes(self) -> None:
        # The list's query: unreserved tickets (`orderId` null) in `_id` order, paged by
        # `_id` (ticketing_common.paging).
        await self.collection.create_index([("orderId", ASCENDING), ("_id", ASCENDING)])

    async def insert(self, ticket: Ticket, events: Iterable[EventPayload]) -> Ticket:
        """Store a new ticket with `events`; the ticket as stored."""
        return _from_doc(await self.outbox.insert(self.collection, _to_doc(ticket), events))

    async def get(self, ticket_id: ObjectId | str) -> Ticket | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(ticket_id)})
        return None if doc is None else _from_doc(doc)

    async def list_unreserved(self, request: PageRequest) -> TicketPage:
        """One page of the tickets no order holds, oldest first."""
        page = await find_page(self.collection, {"orderId": None}, request)
        return TicketPage([_from_doc(doc) for doc in page.docs], page)

    async def replace(
        self, read: Ticket, after: Ticket, events: Iterable[EventPayload]
    ) -> Ticket | None:
        """Store `after` with `events` if the ticket is still as `read` (its version and
        holder); the ticket as written, or None when another write came first."""
        return await self._write(read, after, events)

    async def reserve(
        self, read: Ticket, after: Ticket, events: Iterable[EventPayload]
    ) -> Ticket | None:
        """`replace` for a reservation by `after.order_id`, which also misses when that
        order has been remembered as cancelled since `read`."""
        return await self._write(
            read, after, events, {"cancelledOrderIds": {"$ne": after.order_id}}
        )

    async def release(
        self, read: Ticket, after: Ticket, events: Iterable[EventPayload]
    ) -> Ticket | None:
        """`replace` that also remembers `read`'s holder as cancelled, so a redelivered
        `order:created` of it cannot take the ticket again."""
        assert read.order_id is not None, "only a held ticket is released"
        return await self._write(read, after, events, push=self._remember(read.order_id))

    async def record_cancelled(self, ticket_id: str, order_id: str) -> bool:
        """Remember `order_id` as cancelled on a ticket it does not hold, with no new
        version and no event. False when it holds it now, is remembered already (the
        caller reads again), or the ticket is gone."""
        result = await self.collection.update_one(
            {
                "_id": ObjectId(ticket_id),
                "orderId": {"$ne": order_id},
                "cancelledOrderIds": {"$ne": order_id},
            },
            {"$push": self._remember(order_id)},
        )
        return bool(result.matched_count)

    def _remember(self, order_id: str) -> Document:
        """A `$push` of `order_id` onto the cancelled orders that keeps only the newest
        `cancelled_kept`. The list exists so that a late or redelivered `order:created`
        of a cancelled order cannot take the ticket; such a delivery comes within the
        consumer's redelivery window, while dropping an id needs that many newer orders
        to be admitted by orders (one at a time per ticket, each after the previous was
        cancelled) and cancelled meanwhile."""
        return {"cancelledOrderIds": {"$each": [order_id], "$slice": -self.cancelled_kept}}

    async def _write(
        self,
        read: Ticket,
        after: Ticket,
        events: Iterable[EventPayload],
        condition: Document | None = None,
        push: Document | None = None,
    ) -> Ticket | None:
        query = at_version(read.id, read.version, {"orderId": read.order_id, **(condition or {})})
        update: Document = {"$set": _state(after), **({"$push": push} if push else {})}
        doc = await self.outbox.update(self.collection, query, update, events)
        return None if doc is None else _from_doc(doc)
