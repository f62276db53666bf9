"""The events the tickets service publishes, read off the ticket they describe."""

from ticketing_common.events import TicketCreatedEvent, TicketUpdatedEvent
from tickets.models import Ticket


def ticket_created_event(ticket: Ticket) -> TicketCreatedEvent:
    return TicketCreatedEvent.model_validate(ticket, from_attributes=True)


def ticket_updated_event(ticket: Ticket) -> TicketUpdatedEvent:
    """`ticket:updated` for `ticket` as it is at its version (with `orderId` when held)."""
    return TicketUpdatedEvent.model_validate(ticket, from_attributes=True)
