"""`order:created` and `order:cancelled`, handed to `PaymentService` (the rules are there)."""

from __future__ import annotations

from typing import Any, TypeVar

from nats.aio.msg import Msg

from payments.service import PaymentService
from ticketing_common.events import (
    EventPayload,
    Listener,
    OrderCancelledEvent,
    OrderCreatedEvent,
)

E = TypeVar("E", bound=EventPayload)


class _ServiceListener(Listener[E]):
    """A listener whose handling is one call of `PaymentService`."""

    def __init__(self, service: PaymentService) -> None:
        self.service = service


class OrderCreatedListener(_ServiceListener[OrderCreatedEvent]):
    payload_type = OrderCreatedEvent

    async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
        await self.service.order_created(data)


class OrderCancelledListener(_ServiceListener[OrderCancelledEvent]):
    payload_type = OrderCancelledEvent

    async def on_message(self, data: OrderCancelledEvent, msg: Msg) -> None:
        await self.service.order_cancelled(data)


def order_listeners(service: PaymentService) -> list[Listener[Any]]:
    """Both order events, handed to `service`."""
    return [OrderCreatedListener(service), OrderCancelledListener(service)]
