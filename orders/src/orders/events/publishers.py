"""The events orders publishes (through the outbox), read off the order they describe."""

from __future__ import annotations

from orders.models import Order
from ticketing_common.events import OrderCancelledEvent, OrderCreatedEvent


def order_created_event(order: Order) -> OrderCreatedEvent:
    """`order:created` for a new order, with its ticket's price and version as ordered."""
    return OrderCreatedEvent.model_validate(order, from_attributes=True)


def order_cancelled_event(order: Order) -> OrderCancelledEvent:
    """`order:cancelled` for `order` at the version its cancellation gave it."""
    return OrderCancelledEvent.model_validate(order, from_attributes=True)
