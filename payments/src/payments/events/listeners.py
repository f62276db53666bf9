"""The two subjects payments listens to, each handed to `PaymentService` (the rules are there)."""

from __future__ import annotations

from typing import Any

from payments.service import PaymentService
from ticketing_common.events import Handler, Listener, OrderCancelledEvent, OrderCreatedEvent


def listeners_of(service: PaymentService) -> list[Listener[Any]]:
    return [
        Handler(OrderCreatedEvent, service.order_created),
        Handler(OrderCancelledEvent, service.order_cancelled),
    ]
