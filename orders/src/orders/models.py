"""The order and ticket-replica records as the service works with them; `repository`
stores them as documents."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from ticketing_common.events import OrderStatus
from ticketing_common.money import from_cents

# Statuses an order may leave for `cancelled` (a user's cancel) or `complete` (a payment).
OPEN_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT)


class CancelReason(StrEnum):
    """Why an order was cancelled (`cancelReason`, shown with a cancelled order)."""

    BY_BUYER = "Cancelled by the buyer"
    EXPIRED = "Not paid in time"
    TICKET_CHANGED = (
        "The seller changed the ticket's price or title after it was ordered; please order it again"
    )


@dataclass(frozen=True, slots=True)
class OrderedTicket:
    """The ticket as it was ordered, price included: what the order shows and payments
    charges, whatever the replica says later. `version` is the ticket version it was
    priced at."""

    id: str
    title: str
    price_cents: int
    version: int

    @property
    def price(self) -> Decimal:
        return from_cents(self.price_cents)


@dataclass(frozen=True, slots=True)
class Order:
    """An order for one ticket. `cancel_reason` is the text stored when it was cancelled
    (a `CancelReason` value then), so a reworded reason leaves older orders readable."""

    id: str
    user_id: str
    status: OrderStatus
    expires_at: datetime
    ticket: OrderedTicket
    version: int
    cancel_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def cancelled(self, reason: CancelReason) -> Order:
        """The next version, cancelled for `reason`."""
        return replace(
            self,
            status=OrderStatus.CANCELLED,
            cancel_reason=reason.value,
            version=self.version + 1,
        )

    def completed(self) -> Order:
        """The next version, paid."""
        return replace(self, status=OrderStatus.COMPLETE, version=self.version + 1)


@dataclass(frozen=True, slots=True)
class TicketReplica:
    """A ticket as orders knows it, at its tickets-service `version`; `details_version` is
    the version of its last change of title or price."""

    id: str
    title: str
    price_cents: int
    version: int
    details_version: int

    def updated(self, title: str, price_cents: int, version: int) -> TicketReplica:
        """The replica at `version` with this title and price; `details_version` moves
        only when either differs (a seller's edit; a reservation or release changes
        neither), the rule tickets keeps, so both agree on which orders a change made
        stale."""
        edited = (title, price_cents) != (self.title, self.price_cents)
        return replace(
            self,
            title=title,
            price_cents=price_cents,
            version=version,
            details_version=version if edited else self.details_version,
        )

    def ordered(self) -> OrderedTicket:
        """The ticket as an order made now takes it."""
        return OrderedTicket(self.id, self.title, self.price_cents, self.version)

    def made_stale(self, ticket: OrderedTicket) -> bool:
        """Whether an order of `ticket` was priced before this replica's last edit
        (tickets refuses to reserve exactly these)."""
        return ticket.version < self.details_version
