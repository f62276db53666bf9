from enum import StrEnum


class Subjects(StrEnum):
    """The six subjects of the TICKETING stream. They contain ':', so no wildcards."""

    TICKET_CREATED = "ticket:created"
    TICKET_UPDATED = "ticket:updated"
    ORDER_CREATED = "order:created"
    ORDER_CANCELLED = "order:cancelled"
    EXPIRATION_COMPLETE = "expiration:complete"
    PAYMENT_CREATED = "payment:created"


class OrderStatus(StrEnum):
    CREATED = "created"
    CANCELLED = "cancelled"
    AWAITING_PAYMENT = "awaiting:payment"
    COMPLETE = "complete"


# Statuses that hold a ticket: an order in one of them reserves it.
HOLDING_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT, OrderStatus.COMPLETE)
