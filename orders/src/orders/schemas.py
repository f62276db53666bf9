"""Request and response bodies of the orders API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from orders.models import Order
from ticketing_common.events import OrderStatus, iso_utc
from ticketing_common.ids import ObjectIdStr
from ticketing_common.money import Price
from ticketing_common.schemas import RequestBody


class OrderCreate(RequestBody):
    ticket_id: ObjectIdStr = Field(alias="ticketId")


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


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
    def from_order(cls, order: Order) -> OrderPublic:
        """The order with its ticket as it was ordered: the price shown is the price
        payments charges, whatever the ticket's replica says now."""
        return cls.model_validate(order)
