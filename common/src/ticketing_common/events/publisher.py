"""Publisher base class: one subject, awaited publishes with the event's message id."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from ticketing_common.events.bus import EventBus
from ticketing_common.events.payloads import EventPayload
from ticketing_common.events.subjects import Subjects

E = TypeVar("E", bound=EventPayload)


class Publisher(Generic[E]):
    """Publishes events of one subject; subclasses set `payload_type`.

    Most writes publish through the `Outbox` instead, which stores the event with the
    change; a bare `publish` is for events without a change of their own (a re-sent
    `ticket:updated`, `expiration:complete`).
    """

    payload_type: ClassVar[type[EventPayload]]

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    @property
    def subject(self) -> Subjects:
        return self.payload_type.subject

    async def publish(self, data: E) -> None:
        if not isinstance(data, self.payload_type):
            raise TypeError(f"{type(self).__name__} publishes {self.payload_type.__name__}")
        await self.bus.publish(data)
