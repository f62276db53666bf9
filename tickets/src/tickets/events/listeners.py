"""`order:created` and `order:cancelled`, handed to `TicketService` (the rules are there)."""

from __future__ import annotations

from nats.aio.msg import Msg

from ticketing_common.events import Listener, OrderCancelledEvent, OrderCreatedEvent
from tickets.service import TicketService


class OrderCreatedListener(Listener[OrderCreatedEvent]):
    payload_type = OrderCreatedEvent

    def __init__(self, service: TicketService) -> None:
        self.service = service

    async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
        await self.service.order_created(data)


class OrderCancelledListener(Listener[OrderCancelledEvent]):
    payload_type = OrderCancelledEvent

    def __init__(self, service: TicketService) -> None:
        self.service = service

    async def on_message(self, data: OrderCancelledEvent, msg: Msg) -> None:
        await self.service.order_cancelled(data)
