from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from ticketing_common.events import OrderStatus, iso_utc
from ticketing_common.ids import ObjectIdStr
from ticketing_common.money import Price, from_cents
from ticketing_common.mongo import Document
from ticketing_common.schemas import RequestBody


class OrderCreate(RequestBody):
    ticket_id: ObjectIdStr = Field(alias="ticketId")


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class OrderTicket(_Public):
    id: str
    title: str
    price: Price
    version: int


class OrderPublic(_Public):
    id: str
    user_id: str
    status: OrderStatus
    expires_at: datetime
    ticket: OrderTicket
    version: int
    cancel_reason: str | None = None

    @field_serializer("expires_at")
    def _iso(self, value: datetime) -> str:
        return iso_utc(value)

    @classmethod
    def from_doc(cls, order: Document) -> OrderPublic:
        """The order with its ticket as it was ordered: the price shown is the price
        payments charges, whatever the ticket's replica says now."""
        ticket = order["ticket"]
        price: Decimal = from_cents(ticket["priceCents"])
        return cls(
            id=str(order["_id"]),
            user_id=order["userId"],
            status=OrderStatus(order["status"]),
            expires_at=order["expiresAt"],
            ticket=OrderTicket(
                id=str(ticket["id"]), title=ticket["title"], price=price, version=ticket["version"]
            ),
            version=order["version"],
            cancel_reason=order.get("cancelReason"),
        )
