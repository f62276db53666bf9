"""The events other services publish, as a test hands them to the service under test
(through `Probe.publish`): every field filled, random ids for the ones a test leaves out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ticketing_common.events import (
    ExpirationCompleteEvent,
    OrderCancelledEvent,
    OrderCreatedEvent,
    OrderStatus,
    PaymentCreatedEvent,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.mongo import utcnow
from ticketing_testing.session import random_id

# What orders gives an order to be paid in (its EXPIRATION_WINDOW_SECONDS default).
ORDER_WINDOW = timedelta(minutes=15)


def order_created(
    *,
    order_id: str | None = None,
    ticket_id: str | None = None,
    user_id: str | None = None,
    price: Any = "20",
    expires_at: datetime | None = None,
    version: int = 0,
) -> OrderCreatedEvent:
    """`order:created` as orders publishes it: the order holds the ticket until
    `expires_at` (ORDER_WINDOW from now by default)."""
    return OrderCreatedEvent.model_validate(
        {
            "id": order_id or random_id(),
            "version": version,
            "status": OrderStatus.CREATED,
            "userId": user_id or random_id(),
            "expiresAt": expires_at or utcnow() + ORDER_WINDOW,
            "ticket": {"id": ticket_id or random_id(), "price": price},
        }
    )


def order_cancelled(
    order_id: str, *, ticket_id: str | None = None, version: int = 1
) -> OrderCancelledEvent:
    return OrderCancelledEvent.model_validate(
        {"id": order_id, "version": version, "ticket": {"id": ticket_id or random_id()}}
    )


def ticket_created(
    ticket_id: str | None = None, title: str = "concert", price: Any = "20", version: int = 0
) -> TicketCreatedEvent:
    return TicketCreatedEvent.model_validate(
        {
            "id": ticket_id or random_id(),
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def ticket_updated(
    ticket_id: str, version: int, title: str = "concert", price: Any = "20"
) -> TicketUpdatedEvent:
    return TicketUpdatedEvent.model_validate(
        {
            "id": ticket_id,
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def expiration_complete(order_id: str) -> ExpirationCompleteEvent:
    return ExpirationCompleteEvent.model_validate({"orderId": order_id})


def payment_created(order_id: str, payment_id: str | None = None) -> PaymentCreatedEvent:
    return PaymentCreatedEvent.model_validate(
        {"id": payment_id or random_id(), "orderId": order_id, "stripeId": "pi_test_123"}
    )
