"""Listeners of the orders service (docs/SPEC.md §4, handler rules)."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from orders.repository import Orders, TicketReplicas
from ticketing_common.events import (
    ExpirationCompleteEvent,
    Listener,
    PaymentCreatedEvent,
    RetryLater,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.replicas import ReplicaUpdate

logger = logging.getLogger("orders.events")


class TicketCreatedListener(Listener[TicketCreatedEvent]):
    """Store the replica of a new ticket; a duplicate is a no-op."""

    payload_type = TicketCreatedEvent

    def __init__(self, replicas: TicketReplicas) -> None:
        self.replicas = replicas

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        if not await self.replicas.add(data):
            logger.info("ticket %s already replicated; duplicate ignored", data.id)


class TicketUpdatedListener(Listener[TicketUpdatedEvent]):
    """Apply a ticket's change only on top of the version just before it; then cancel the
    open orders priced before the ticket's last edit (tickets refuses to reserve them)."""

    payload_type = TicketUpdatedEvent

    def __init__(self, replicas: TicketReplicas, orders: Orders) -> None:
        self.replicas = replicas
        self.orders = orders

    async def on_message(self, data: TicketUpdatedEvent, msg: Msg) -> None:
        outcome = await self.replicas.apply_update(data)
        if outcome is ReplicaUpdate.NOT_YET:
            raise RetryLater(f"ticket {data.id} replica is not at version {data.version - 1}")
        if outcome is ReplicaUpdate.ALREADY_APPLIED:
            logger.info("ticket %s v%d already applied; stale event", data.id, data.version)
        # Also on a redelivery: an earlier delivery may have stopped between the two writes.
        replica = await self.replicas.get(data.id)
        if replica is not None:
            await self.orders.cancel_stale(replica)


class ExpirationCompleteListener(Listener[ExpirationCompleteEvent]):
    """Cancel an order whose time ran out, only while it is still `created`."""

    payload_type = ExpirationCompleteEvent

    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def on_message(self, data: ExpirationCompleteEvent, msg: Msg) -> None:
        order, changed = await self.orders.expire(data.order_id)
        if order is None:
            logger.warning("expiration:complete for unknown order %s; acked", data.order_id)
        elif not changed:
            logger.info("order %s is %s; expiry ignored", data.order_id, order.status)


class PaymentCreatedListener(Listener[PaymentCreatedEvent]):
    """Mark a paid order `complete`; a cancelled order stays cancelled (payments refunds
    it); a duplicate is a no-op."""

    payload_type = PaymentCreatedEvent

    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def on_message(self, data: PaymentCreatedEvent, msg: Msg) -> None:
        order, changed = await self.orders.complete(data.order_id)
        if order is None:
            logger.warning("payment:created for unknown order %s; acked", data.order_id)
        elif not changed:
            logger.info("order %s is %s; payment %s ignored", data.order_id, order.status, data.id)
