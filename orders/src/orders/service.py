"""The rules of the orders service: placing, showing and cancelling one's orders (the
routes), keeping the ticket replicas and ending orders (the `ticket:created`,
`ticket:updated`, `expiration:complete` and `payment:created` handlers of docs/SPEC.md
§4), and the expiry sweep's cancel.

Requests, the listeners and the sweep run concurrently and events may come in any order
or twice. Each change is one conditional write (`repository`) of the record a transition
of `Order` or `TicketReplica` gives, with the events read off that record; a write that
matches nothing (something else changed the record meanwhile) starts again from a fresh
read. An order's version moves only when it leaves an open status, so that happens at
most once: a transition decides again at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId

from orders.events.publishers import order_cancelled_event, order_created_event
from orders.models import OPEN_STATUSES, CancelReason, Order, TicketReplica
from orders.repository import (
    OrderPage,
    Orders,
    TicketReplicas,
    TicketReservedError,
    TooManyOpenOrdersError,
)
from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import (
    EventPayload,
    ExpirationCompleteEvent,
    OrderStatus,
    PaymentCreatedEvent,
    RetryLater,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import utcnow
from ticketing_common.paging import PageRequest
from ticketing_common.replicas import arriving

logger = logging.getLogger("orders.events")

RESERVED = "Ticket is already reserved"
PAID = "Cannot cancel a completed order"


def _events_of(order: Order) -> list[EventPayload]:
    """What a change leaving `order` announces: docs/SPEC.md §4 has `order:cancelled`,
    and no event for a paid order."""
    return [order_cancelled_event(order)] if order.status is OrderStatus.CANCELLED else []


@dataclass(frozen=True)
class OrderService:
    """The orders rules, over the orders and the ticket replicas. `replica_wait`: how long
    an order for a ticket not replicated yet waits for its `ticket:created`."""

    orders: Orders
    replicas: TicketReplicas
    expiration_window: timedelta
    replica_wait: float = 0.0

    # The routes -------------------------------------------------------------------------

    async def place(self, user_id: str, ticket_id: str) -> Order:
        """Order a ticket the replicas know, announcing it with `order:created`; it holds
        the ticket until it expires or is cancelled."""
        ticket = await arriving(lambda: self.replicas.get(ticket_id), self.replica_wait)
        if ticket is None:
            raise NotFoundError()
        order = Order(
            id=str(ObjectId()),
            user_id=user_id,
            status=OrderStatus.CREATED,
            expires_at=utcnow() + self.expiration_window,
            ticket=ticket.ordered(),
            version=0,
        )
        try:
            placed = await self.orders.insert(order, [order_created_event(order)])
        except TicketReservedError:
            raise BadRequestError(RESERVED) from None
        except TooManyOpenOrdersError as exc:
            raise BadRequestError(
                f"You already have {exc.limit} open orders; pay for or cancel one first"
            ) from None
        # The seller's edit may have reached the replica after it was read: the listener's
        # check of it may have run before this order existed, so check here too.
        now = await self.replicas.get(ticket_id)
        if now is not None and now.made_stale(placed.ticket):
            await self._cancel_stale(now)
            placed = await self.orders.get(placed.id) or placed
        return placed

    async def show(self, user_id: str, order_id: ObjectId) -> Order:
        """One of the user's orders: 404 when there is none, 401 when it is another's."""
        order = await self.orders.get(order_id)
        if order is None:
            raise NotFoundError()
        if order.user_id != user_id:
            raise NotAuthorizedError()
        return order

    async def for_user(self, user_id: str, request: PageRequest) -> OrderPage:
        return await self.orders.for_user(user_id, request)

    async def cancel(self, user_id: str, order_id: ObjectId) -> None:
        """Cancel one of the user's open orders, releasing its ticket; one already
        cancelled stays as it is (no event), a paid one is refused."""
        owned = await self.show(user_id, order_id)
        order, _changed = await self._leave_open(
            owned, OPEN_STATUSES, lambda order: order.cancelled(CancelReason.BY_BUYER)
        )
        if order is not None and order.status is OrderStatus.COMPLETE:
            raise BadRequestError(PAID)

    # The ticket events ------------------------------------------------------------------

    async def ticket_created(self, data: TicketCreatedEvent) -> None:
        """Store the replica of a new ticket; a duplicate is a no-op."""
        replica = TicketReplica(
            id=data.id,
            title=data.title,
            price_cents=to_cents(data.price),
            version=data.version,
            details_version=data.version,
        )
        if not await self.replicas.insert(replica):
            logger.info("ticket %s already replicated; duplicate ignored", data.id)

    async def ticket_updated(self, data: TicketUpdatedEvent) -> None:
        """Apply a ticket's change only on top of the version just before it (RetryLater
        until that has arrived); then cancel the open orders priced before the ticket's
        last edit (tickets refuses to reserve them)."""
        while True:
            replica = await self.replicas.get(data.id)
            if replica is None or replica.version < data.version - 1:
                raise RetryLater(f"ticket {data.id} replica is not at version {data.version - 1}")
            if replica.version >= data.version:
                logger.info("ticket %s v%d already applied; stale event", data.id, data.version)
                break
            after = replica.updated(data.title, to_cents(data.price), data.version)
            # A miss means another delivery applied it meanwhile: read again to say so.
            applied = await self.replicas.replace(replica, after)
            if applied is not None:
                replica = applied
                break
        # Also on a redelivery: an earlier delivery may have stopped between the two writes.
        await self._cancel_stale(replica)

    async def _cancel_stale(self, replica: TicketReplica) -> None:
        """Cancel every open order for the ticket priced before its title or price last
        changed.

        tickets refuses to reserve exactly these orders (docs/SPEC.md §4): such a change
        happens only while no order holds the ticket, so an order priced at an earlier
        version was not reserved before it and will not be after. Idempotent: a cancelled
        order is no longer open."""
        stale = await self.orders.open_priced_before(replica.id, replica.details_version)
        for order in stale:
            _order, changed = await self._leave_open(
                order, OPEN_STATUSES, lambda order: order.cancelled(CancelReason.TICKET_CHANGED)
            )
            if changed:
                logger.info(
                    "order %s priced at ticket %s v%d, changed at v%d: cancelled",
                    order.id,
                    replica.id,
                    order.ticket.version,
                    replica.details_version,
                )

    # The order's end --------------------------------------------------------------------

    async def expiration_complete(self, data: ExpirationCompleteEvent) -> None:
        """Cancel an order whose time ran out, only while it is still `created`."""
        order, changed = await self._expire(await self.orders.get(data.order_id))
        if order is None:
            logger.warning("expiration:complete for unknown order %s; acked", data.order_id)
        elif not changed:
            logger.info("order %s is %s; expiry ignored", data.order_id, order.status)

    async def payment_created(self, data: PaymentCreatedEvent) -> None:
        """Mark a paid order `complete`; a cancelled order stays cancelled (payments
        refunds it); a duplicate is a no-op."""
        order, changed = await self._leave_open(
            await self.orders.get(data.order_id), OPEN_STATUSES, Order.completed
        )
        if order is None:
            logger.warning("payment:created for unknown order %s; acked", data.order_id)
        elif not changed:
            logger.info("order %s is %s; payment %s ignored", data.order_id, order.status, data.id)

    # The expiry sweep -------------------------------------------------------------------

    async def due_for_expiry(self, before: datetime, limit: int) -> list[Order]:
        return await self.orders.due_for_expiry(before, limit)

    async def expire_overdue(self, order: Order) -> bool:
        """Cancel an overdue order as `expiration:complete` would, from `order` as the
        sweep read it; whether this call cancelled it."""
        _order, changed = await self._expire(order)
        return changed

    async def _expire(self, order: Order | None) -> tuple[Order | None, bool]:
        """The order's time ran out: cancel it only while it is still `created`; a paid or
        already cancelled order is left alone."""
        return await self._leave_open(
            order, (OrderStatus.CREATED,), lambda order: order.cancelled(CancelReason.EXPIRED)
        )

    async def _leave_open(
        self,
        order: Order | None,
        from_statuses: tuple[OrderStatus, ...],
        transition: Callable[[Order], Order],
    ) -> tuple[Order | None, bool]:
        """Store `transition(order)` while the order's status is one of `from_statuses`,
        starting from `order` as the caller just read it. The order as it now is (None
        when unknown) and whether this call changed it."""
        while order is not None and order.status in from_statuses:
            after = transition(order)
            written = await self.orders.replace(order, after, _events_of(after))
            if written is not None:
                return written, True
            order = await self.orders.get(order.id)
        return order, False
