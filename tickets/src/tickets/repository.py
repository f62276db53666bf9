"""All database access of the tickets service.

Every change of a ticket is one conditional single-document write pinned to the
version it was computed from; the events it causes ride in the same write (the
outbox) and are published after it.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo import ASCENDING

from ticketing_common.events import Outbox
from ticketing_common.mongo import Collection, Document, utcnow, versioned
from ticketing_common.paging import Page, PageRequest, find_page
from tickets.events.publishers import ticket_created_event, ticket_updated_event
from tickets.models import Ticket


class Tickets:
    def __init__(self, collection: Collection, outbox: Outbox, cancelled_kept: int) -> None:
        self.collection = collection
        self.outbox = outbox
        self.cancelled_kept = cancelled_kept

    async def create_indexes(self) -> None:
        # The list's query: unreserved tickets (`orderId` null) in `_id` order, paged by
        # `_id` (ticketing_common.paging).
        await self.collection.create_index([("orderId", ASCENDING), ("_id", ASCENDING)])

    async def create(self, title: str, price_cents: int, user_id: str) -> Ticket:
        ticket = Ticket(
            id=str(ObjectId()), title=title, price_cents=price_cents, user_id=user_id, version=0
        )
        doc: Document = {
            "_id": ticket.object_id,
            "title": title,
            "priceCents": price_cents,
            "userId": user_id,
            "version": 0,
            "orderId": None,
            "cancelledOrderIds": [],
            "detailsVersion": 0,
            "createdAt": utcnow(),
        }
        await self.outbox.insert(self.collection, doc, [ticket_created_event(ticket)])
        return ticket

    async def get(self, ticket_id: ObjectId | str) -> Ticket | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(ticket_id)})
        return None if doc is None else Ticket.from_doc(doc)

    async def list_unreserved(self, request: PageRequest) -> tuple[list[Ticket], Page]:
        """One page of the tickets no order holds, oldest first."""
        page = await find_page(self.collection, {"orderId": None}, request)
        return [Ticket.from_doc(doc) for doc in page.docs], page

    async def update_details(self, ticket: Ticket, title: str, price_cents: int) -> Ticket | None:
        """Set title and price if `ticket` is unchanged and free; None otherwise."""
        after = ticket.changed(title=title, price_cents=price_cents)
        return await self._write(
            ticket,
            {"orderId": None},
            {
                "$set": {
                    "title": title,
                    "priceCents": price_cents,
                    "detailsVersion": after.details_version,
                }
            },
            after,
        )

    async def reserve(self, ticket: Ticket, order_id: str) -> Ticket | None:
        """Hold `ticket` for `order_id` if it is unchanged, free, and the order is not
        known as cancelled; None otherwise."""
        return await self._write(
            ticket,
            {"orderId": None, "cancelledOrderIds": {"$ne": order_id}},
            {"$set": {"orderId": order_id}},
            ticket.changed(order_id=order_id),
        )

    async def release(self, ticket: Ticket, order_id: str) -> Ticket | None:
        """Free `ticket` held by `order_id` if it is unchanged; None otherwise. The order
        is recorded as cancelled too, so a redelivered `order:created` cannot take the
        ticket again."""
        return await self._write(
            ticket,
            {"orderId": order_id},
            {"$set": {"orderId": None}, "$push": self._remember(order_id)},
            ticket.changed(release=True),
        )

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
        self, ticket: Ticket, condition: Document, update: Document, after: Ticket
    ) -> Ticket | None:
        query, change = versioned(ticket.object_id, ticket.version, update, condition)
        doc = await self.outbox.update(
            self.collection, query, change, [ticket_updated_event(after)]
        )
        return None if doc is None else Ticket.from_doc(doc)
