"""Listeners of the payments service (docs/SPEC.md §4, handler rules)."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from payments.checkout import Checkout
from payments.models import OrderReplica
from payments.repository import OrderReplicas
from ticketing_common.events import (
    Listener,
    OrderCancelledEvent,
    OrderCreatedEvent,
    RetryLater,
)
from ticketing_common.money import to_cents
from ticketing_common.replicas import ReplicaUpdate

logger = logging.getLogger("payments.events")


class OrderCreatedListener(Listener[OrderCreatedEvent]):
    """Store the replica of a new order; a duplicate is a no-op."""

    payload_type = OrderCreatedEvent

    def __init__(self, orders: OrderReplicas) -> None:
        self.orders = orders

    async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
        replica = OrderReplica(
            id=data.id,
            version=data.version,
            user_id=data.user_id,
            price_cents=to_cents(data.ticket.price),
            status=data.status,
            expires_at=data.expires_at,
        )
        if not await self.orders.add(replica):
            logger.info("order %s already replicated; duplicate ignored", data.id)


class OrderCancelledListener(Listener[OrderCancelledEvent]):
    """Mark the replica cancelled on top of the version just before; then wait for a
    payment attempt in flight, and refund the order if it was charged."""

    payload_type = OrderCancelledEvent

    def __init__(self, orders: OrderReplicas, checkout: Checkout) -> None:
        self.orders = orders
        self.checkout = checkout

    async def on_message(self, data: OrderCancelledEvent, msg: Msg) -> None:
        outcome = await self.orders.apply_cancelled(data.id, data.version)
        if outcome is ReplicaUpdate.NOT_YET:
            raise RetryLater(f"order {data.id} replica is not at version {data.version - 1}")
        if outcome is ReplicaUpdate.ALREADY_APPLIED:
            logger.info("order %s v%d already applied", data.id, data.version)
        # Also on a redelivery: an earlier delivery may have stopped at an attempt in
        # flight or a failed refund; settling is idempotent.
        await self.checkout.settle_cancelled(data.id)
