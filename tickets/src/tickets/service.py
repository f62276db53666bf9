"""The rules of the tickets service: selling and editing tickets (the routes) and holding
them for orders (the `order:created` and `order:cancelled` handlers of docs/SPEC.md §4).

Requests and the two listeners run concurrently and events may come in any order or
twice; each check-and-write is one conditional write (`repository`) of the record a
transition of `Ticket` gives, with the events read off that record, and a write that
matches nothing (another handler or a request changed the ticket meanwhile) starts
again from a fresh read.
"""

from __future__ import annotations

import logging

from bson import ObjectId

from ticketing_common.errors import (
    BadRequestError,
    ConflictError,
    NotAuthorizedError,
    NotFoundError,
)
from ticketing_common.events import (
    OrderCancelledEvent,
    OrderCreatedEvent,
    Publisher,
    RetryLater,
    TicketUpdatedEvent,
)
from ticketing_common.paging import PageRequest
from tickets.events.publishers import ticket_created_event, ticket_updated_event
from tickets.models import Ticket
from tickets.repository import TicketPage, Tickets

logger = logging.getLogger("tickets.events")

RESERVED = "Cannot edit a reserved ticket"
# A write misses only when something else changed the ticket in between; this many misses
# in a row means heavy contention: hand the message back for a later delivery.
MAX_ATTEMPTS = 25


class TicketService:
    def __init__(self, tickets: Tickets, publisher: Publisher[TicketUpdatedEvent]) -> None:
        self.tickets = tickets
        self.publisher = publisher

    # The routes -------------------------------------------------------------------------

    async def create(self, user_id: str, title: str, price_cents: int) -> Ticket:
        """Put a ticket up for sale, announcing it with `ticket:created`."""
        ticket = Ticket(
            id=str(ObjectId()), title=title, price_cents=price_cents, user_id=user_id, version=0
        )
        return await self.tickets.insert(ticket, [ticket_created_event(ticket)])

    async def show(self, ticket_id: ObjectId) -> Ticket:
        ticket = await self.tickets.get(ticket_id)
        if ticket is None:
            raise NotFoundError()
        return ticket

    async def unreserved(self, request: PageRequest) -> TicketPage:
        return await self.tickets.list_unreserved(request)

    async def edit(self, user_id: str, ticket_id: ObjectId, title: str, price_cents: int) -> Ticket:
        """Change title and price of one's own ticket while no order holds it. One try:
        a lost race is a 409 for the client to retry, unless an order took the ticket."""
        ticket = await self.show(ticket_id)
        # Ownership before the reservation, so others learn nothing about the ticket.
        if ticket.user_id != user_id:
            raise NotAuthorizedError()
        if ticket.order_id is not None:
            raise BadRequestError(RESERVED)
        after = ticket.edited(title, price_cents)
        updated = await self.tickets.replace(ticket, after, [ticket_updated_event(after)])
        if updated is None:
            current = await self.tickets.get(ticket_id)
            if current is not None and current.order_id is not None:
                raise BadRequestError(RESERVED)
            raise ConflictError()
        return updated

    # The order events -------------------------------------------------------------------

    async def order_created(self, data: OrderCreatedEvent) -> None:
        """Hold the ticket for the order, unless the order was cancelled already or was
        priced before the seller's last edit; RetryLater while another order holds it."""
        order_id, ticket_id = data.id, data.ticket.id
        for _ in range(MAX_ATTEMPTS):
            ticket = await self._named_ticket(data)
            if ticket is None:
                return
            if order_id in ticket.cancelled_order_ids:
                logger.info("order %s was cancelled before it was created; ignored", order_id)
                return
            if ticket.order_id == order_id:
                # Already applied: send the same event again (same message id) in case
                # the first never reached the stream; no new version.
                await self.publisher.publish(ticket_updated_event(ticket))
                return
            if ticket.priced_before_edit(data.ticket.version):
                # The seller's edit landed while the order was on its way: refuse it. The
                # verdict never changes (versions only grow), so a redelivery gets the same;
                # orders cancels the order when the edit reaches its replica.
                logger.info(
                    "order %s priced at ticket %s v%s, edited at v%d: not reserved",
                    order_id,
                    ticket_id,
                    data.ticket.version,
                    ticket.details_version,
                )
                return
            if ticket.order_id is not None:
                # Orders admits a new order only after the old one is cancelled; that
                # cancel has not reached us yet.
                raise RetryLater(f"ticket {ticket_id} is held by order {ticket.order_id}")
            after = ticket.reserved_by(order_id)
            reserved = await self.tickets.reserve(ticket, after, [ticket_updated_event(after)])
            if reserved is not None:
                return
        raise RetryLater(f"ticket {ticket_id} kept changing")

    async def order_cancelled(self, data: OrderCancelledEvent) -> None:
        """Free the ticket if the order holds it; either way remember the order as
        cancelled, so its late `order:created` cannot take the ticket."""
        order_id, ticket_id = data.id, data.ticket.id
        for _ in range(MAX_ATTEMPTS):
            ticket = await self._named_ticket(data)
            if ticket is None:
                return
            if ticket.order_id == order_id:
                after = ticket.released()
                released = await self.tickets.release(ticket, after, [ticket_updated_event(after)])
                if released is not None:
                    return
            elif order_id in ticket.cancelled_order_ids:
                return  # a redelivery: already remembered
            elif await self.tickets.record_cancelled(ticket_id, order_id):
                return
        raise RetryLater(f"ticket {ticket_id} kept changing")

    async def _named_ticket(self, data: OrderCreatedEvent | OrderCancelledEvent) -> Ticket | None:
        """The ticket the order event names, read afresh; None (logged, so the event is
        dropped) when tickets has no such ticket."""
        ticket = await self.tickets.get(data.ticket.id)
        if ticket is None:
            logger.warning(
                "%s %s names unknown ticket %s; dropped", data.subject, data.id, data.ticket.id
            )
        return ticket
