"""Typed payloads of the six events (docs/SPEC.md §4): camelCase on the wire, snake_case in code.

Each payload knows its subject and its message id (subject + id + version, or the
order for events that have no version), so a retried publish is deduplicated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from ticketing_common.events.subjects import OrderStatus, Subjects
from ticketing_common.ids import ObjectIdStr
from ticketing_common.money import Price


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class EventPayload(WireModel):
    """Base of every event payload."""

    subject: ClassVar[Subjects]

    def message_id(self) -> str:
        raise NotImplementedError

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()


class _Versioned(EventPayload):
    id: ObjectIdStr
    version: int = Field(ge=0)

    def message_id(self) -> str:
        return f"{self.subject}:{self.id}:{self.version}"


class TicketCreatedEvent(_Versioned):
    subject: ClassVar[Subjects] = Subjects.TICKET_CREATED
    title: str
    price: Price
    user_id: ObjectIdStr


class TicketUpdatedEvent(_Versioned):
    subject: ClassVar[Subjects] = Subjects.TICKET_UPDATED
    title: str
    price: Price
    user_id: ObjectIdStr
    order_id: ObjectIdStr | None = None


class OrderTicketRef(WireModel):
    id: ObjectIdStr
    price: Price
    # The ticket version the order was priced at (added later, so optional): tickets
    # refuses to reserve for an order priced before the ticket's last edit.
    version: int | None = Field(default=None, ge=0)


class OrderCreatedEvent(_Versioned):
    subject: ClassVar[Subjects] = Subjects.ORDER_CREATED
    status: OrderStatus
    user_id: ObjectIdStr
    expires_at: AwareDatetime
    ticket: OrderTicketRef

    @field_serializer("expires_at")
    def _iso(self, value: datetime) -> str:
        return iso_utc(value)


class OrderTicketId(WireModel):
    id: ObjectIdStr


class OrderCancelledEvent(_Versioned):
    subject: ClassVar[Subjects] = Subjects.ORDER_CANCELLED
    ticket: OrderTicketId


class ExpirationCompleteEvent(EventPayload):
    subject: ClassVar[Subjects] = Subjects.EXPIRATION_COMPLETE
    order_id: ObjectIdStr

    def message_id(self) -> str:
        return f"{self.subject}:{self.order_id}"


class PaymentCreatedEvent(EventPayload):
    subject: ClassVar[Subjects] = Subjects.PAYMENT_CREATED
    id: ObjectIdStr
    order_id: ObjectIdStr
    stripe_id: str = Field(min_length=1)

    def message_id(self) -> str:
        return f"{self.subject}:{self.id}"


PAYLOADS: dict[Subjects, type[EventPayload]] = {
    cls.subject: cls
    for cls in (
        TicketCreatedEvent,
        TicketUpdatedEvent,
        OrderCreatedEvent,
        OrderCancelledEvent,
        ExpirationCompleteEvent,
        PaymentCreatedEvent,
    )
}


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the original's `toISOString()`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
