"""The ticket record as the service works with it; `repository` stores it as a document."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from ticketing_common.money import from_cents


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket. `order_id` is the order holding it; `cancelled_order_ids` are the last
    orders cancelled on it (the newest last), so their late `order:created` is ignored;
    `details_version` is the version of its last change of title or price."""

    id: str
    title: str
    price_cents: int
    user_id: str
    version: int
    order_id: str | None = None
    cancelled_order_ids: tuple[str, ...] = ()
    details_version: int = 0

    @property
    def price(self) -> Decimal:
        return from_cents(self.price_cents)

    def edited(self, title: str, price_cents: int) -> Ticket:
        """The next version with this title and price; `details_version` moves only when
        either differs (orders applies the same rule to its replica)."""
        version = self.version + 1
        same = (title, price_cents) == (self.title, self.price_cents)
        return replace(
            self,
            title=title,
            price_cents=price_cents,
            version=version,
            details_version=self.details_version if same else version,
        )

    def reserved_by(self, order_id: str) -> Ticket:
        """The next version, held by `order_id`."""
        return replace(self, version=self.version + 1, order_id=order_id)

    def released(self) -> Ticket:
        """The next version, held by no order."""
        return replace(self, version=self.version + 1, order_id=None)

    def priced_before_edit(self, priced_at: int | None) -> bool:
        """Whether an order priced at ticket version `priced_at` is stale: the title or
        price changed after that version (orders applies the same rule to its replica).
        An `order:created` without the version (published before it was added) is not."""
        return priced_at is not None and priced_at < self.details_version
