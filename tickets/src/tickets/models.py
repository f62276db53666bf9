"""The ticket record as the service works with it; stored as a MongoDB document."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from bson import ObjectId

from ticketing_common.money import from_cents
from ticketing_common.mongo import Document


@dataclass(frozen=True)
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
    def object_id(self) -> ObjectId:
        return ObjectId(self.id)

    @property
    def price(self) -> Decimal:
        return from_cents(self.price_cents)

    def changed(
        self,
        *,
        title: str | None = None,
        price_cents: int | None = None,
        order_id: str | None = None,
        release: bool = False,
    ) -> Ticket:
        """The ticket after one change: the next version, with the given fields."""
        after = replace(
            self,
            version=self.version + 1,
            title=self.title if title is None else title,
            price_cents=self.price_cents if price_cents is None else price_cents,
            order_id=None if release else (order_id or self.order_id),
        )
        if (after.title, after.price_cents) != (self.title, self.price_cents):
            after = replace(after, details_version=after.version)
        return after

    def priced_before_edit(self, priced_at: int | None) -> bool:
        """Whether an order priced at ticket version `priced_at` is stale: the title or
        price changed after that version (orders applies the same rule to its replica).
        An `order:created` without the version (published before it was added) is not."""
        return priced_at is not None and priced_at < self.details_version

    @classmethod
    def from_doc(cls, doc: Document) -> Ticket:
        return cls(
            id=str(doc["_id"]),
            title=doc["title"],
            price_cents=doc["priceCents"],
            user_id=doc["userId"],
            version=doc["version"],
            order_id=doc.get("orderId"),
            cancelled_order_ids=tuple(doc.get("cancelledOrderIds") or ()),
            details_version=doc.get("detailsVersion", 0),
        )
