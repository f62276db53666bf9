"""The two subjects tickets listens to, each handed to `TicketService` (the rules are there)."""

from __future__ import annotations

from typing import Any

from ticketing_common.events import Handler, Listener, OrderCancelledEvent, OrderCreatedEvent
from tickets.service import TicketService


def listeners_of(service: TicketService) -> list[Listener[Any]]:
    return [
        Handler(OrderCreatedEvent, service.order_created),
        Handler(OrderCancelledEvent, service.order_cancelled),
    ]
