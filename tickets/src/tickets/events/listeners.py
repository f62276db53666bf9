"""`order:created` and `order:cancelled` as the handler rules of docs/SPEC.md §4 for tickets.

The two listeners run concurrently and events may come in any order or twice; each
check-and-write is one conditional update, and a write that matches nothing (another
handler or a request changed the ticket meanwhile) starts again from a fresh read.
"""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from ticketing_common.events import Listener, OrderCancelledEvent, OrderCreatedEvent, RetryLater
from tickets.events.publishers import TicketUpdatedPublisher, ticket_updated_event
from tickets.models import Ticket
from tickets.repository import Tickets

logger = logging.getLogger("tickets.events")

# A write misses only when something else changed the ticket in between; this many misses
# in a row means heavy contention: hand the message back for a later delivery.
MAX_ATTEMPTS = 25


async def named_ticket(
    tickets: Tickets, data: OrderCreatedEvent | OrderCancelledEvent
) -> Ticket | None:
    """The ticket the order event names, read afresh; None (logged, so the event is
    dropped) when tickets has no such ticket."""
    ticket = await tickets.get(data.ticket.id)
    if ticket is None:
        logger.warning(
            "%s %s names unknown ticket %s; dropped", data.subject, data.id, data.ticket.id
        )
    return ticket


class OrderCreatedListener(Listener[OrderCreatedEvent]):
    payload_type = OrderCreatedEvent

    def __init__(self, tickets: Tickets, publisher: TicketUpdatedPublisher) -> None:
        self.tickets = tickets
        self.publisher = publisher

    async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
        order_id, ticket_id = data.id, data.ticket.id
        for _ in range(MAX_ATTEMPTS):
            ticket = await named_ticket(self.tickets, data)
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
            if await self.tickets.reserve(ticket, order_id) is not None:
                return
        raise RetryLater(f"ticket {ticket_id} kept changing")


class OrderCancelledListener(Listener[OrderCancelledEvent]):
    payload_type = OrderCancelledEvent

    def __init__(self, tickets: Tickets) -> None:
        self.tickets = tickets

    async def on_message(self, data: OrderCancelledEvent, msg: Msg) -> None:
        order_id, ticket_id = data.id, data.ticket.id
        for _ in range(MAX_ATTEMPTS):
            ticket = await named_ticket(self.tickets, data)
            if ticket is None:
                return
            if ticket.order_id == order_id:
                if await self.tickets.release(ticket, order_id) is not None:
                    return
            elif order_id in ticket.cancelled_order_ids:
                return  # a redelivery: already remembered
            elif await self.tickets.record_cancelled(ticket_id, order_id):
                return
        raise RetryLater(f"ticket {ticket_id} kept changing")
