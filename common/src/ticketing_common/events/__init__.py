"""Events (docs/SPEC.md §4): subjects, payloads, and the JetStream publishers and listeners."""

from ticketing_common.events.bus import EventBus, PublishError
from ticketing_common.events.listener import Handler, Listener, RetryLater
from ticketing_common.events.outbox import Outbox, outbox_entry, without_outbox
from ticketing_common.events.payloads import (
    EventPayload,
    ExpirationCompleteEvent,
    OrderCancelledEvent,
    OrderCreatedEvent,
    PaymentCreatedEvent,
    TicketCreatedEvent,
    TicketUpdatedEvent,
    iso_utc,
)
from ticketing_common.events.publisher import Publisher
from ticketing_common.events.stream import STREAM_NAME, durable_name, ensure_stream
from ticketing_common.events.subjects import HOLDING_STATUSES, OrderStatus, Subjects

__all__ = [
    "HOLDING_STATUSES",
    "STREAM_NAME",
    "EventBus",
    "EventPayload",
    "ExpirationCompleteEvent",
    "Handler",
    "Listener",
    "OrderCancelledEvent",
    "OrderCreatedEvent",
    "OrderStatus",
    "Outbox",
    "PaymentCreatedEvent",
    "PublishError",
    "Publisher",
    "RetryLater",
    "Subjects",
    "TicketCreatedEvent",
    "TicketUpdatedEvent",
    "durable_name",
    "ensure_stream",
    "iso_utc",
    "outbox_entry",
    "without_outbox",
]
