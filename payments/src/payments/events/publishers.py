"""The event the payments service publishes, read off the payment it describes."""

from payments.models import Payment
from ticketing_common.events import PaymentCreatedEvent


def payment_created_event(payment: Payment) -> PaymentCreatedEvent:
    """`payment:created` for a paid `payment` (its id, order and PaymentIntent)."""
    return PaymentCreatedEvent.model_validate(payment, from_attributes=True)
