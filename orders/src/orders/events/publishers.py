"""The events orders publishes (through the outbox), built from an order document."""

from __future__ import annotations

from ticketing_common.events import OrderCancelledEvent, OrderCreatedEvent, OrderStatus
from ticketing_common.events.payloads import OrderTicketId, OrderTicketRef
from ticketing_common.money import from_cents
from ticketing_common.mongo import Document


def order_created_event(order: Document) -> OrderCreatedEvent:
    return OrderCreatedEvent(
        id=str(order["_id"]),
        version=order["version"],
        status=OrderStatus(order["status"]),
        user_id=order["userId"],
        expires_at=order["expiresAt"],
        ticket=OrderTicketRef(
            id=str(order["ticket"]["id"]),
            price=from_cents(order["ticket"]["priceCents"]),
            version=order["ticket"]["version"],
        ),
    )


def order_cancelled_event(order: Document, version: int) -> OrderCancelledEvent:
    """`order:cancelled` for `order` at the version its cancellation gives it."""
    return OrderCancelledEvent(
        id=str(order["_id"]), version=version, ticket=OrderTicketId(id=str(order["ticket"]["id"]))
    )
