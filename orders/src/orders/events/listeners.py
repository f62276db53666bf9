"""The four subjects orders listens to, each handed to `OrderService` (the rules are there)."""

from __future__ import annotations

from typing import Any

from orders.service import OrderService
from ticketing_common.events import (
    ExpirationCompleteEvent,
    Handler,
    Listener,
    PaymentCreatedEvent,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)


def listeners_of(service: OrderService) -> list[Listener[Any]]:
    return [
        Handler(TicketCreatedEvent, service.ticket_created),
        Handler(TicketUpdatedEvent, service.ticket_updated),
        Handler(ExpirationCompleteEvent, service.expiration_complete),
        Handler(PaymentCreatedEvent, service.payment_created),
    ]
