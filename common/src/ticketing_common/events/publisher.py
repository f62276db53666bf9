"""Publisher: awaited publishes of one payload type, with the event's message id."""

from __future__ import annotations

from typing import Generic, TypeVar

from ticketing_common.events.bus import EventBus
from ticketing_common.events.payloads import EventPayload

E = TypeVar("E", bound=EventPayload)


class Publisher(Generic[E]):
    """Publishes `payload_type` events straight to the bus: `Publisher(bus,
    TicketUpdatedEvent)`.

    Most writes publish through the `Outbox` instead, which stores the event with the
    change; a bare `publish` is for events without a change of their own (a re-sent
    `ticket:updated`, `expiration:complete`). The type says, to whoever holds one, the only
    event it may send.
    """

    def __init__(self, bus: EventBus, payload_type: type[E]) -> None:
        self.bus = bus
        self.payload_type = payload_type

    async def publish(self, data: E) -> None:
        await self.bus.publish(data)
