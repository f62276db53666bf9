"""What the client reads from the API, and how the pages present it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ticketing_common.money import CENT

PAYABLE_STATUSES = frozenset({"created", "awaiting:payment"})


def format_price(price: Decimal) -> str:
    """A price in dollars with two decimals, as the pages show it."""
    return f"{price.quantize(CENT)}"


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


M = TypeVar("M", bound=ApiModel)


@dataclass(frozen=True)
class ListPage(Generic[M]):
    """One page of a list the API answers a page at a time (docs/SPEC.md §3), and the
    cursor of the next page when its `Link` header names one."""

    items: list[M]
    next_cursor: str | None = None


class User(ApiModel):
    id: str
    email: str


class CurrentUserBody(ApiModel):
    current_user: User | None = Field(alias="currentUser")


class OrderTicket(ApiModel):
    id: str
    title: str
    price: Decimal
    version: int


class Ticket(OrderTicket):
    user_id: str = Field(alias="userId")
    order_id: str | None = Field(default=None, alias="orderId")


class OrderState(StrEnum):
    """What the order page offers: payment only while payable."""

    PAYABLE = "payable"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Order(ApiModel):
    id: str
    user_id: str = Field(alias="userId")
    status: str
    expires_at: datetime = Field(alias="expiresAt")
    ticket: OrderTicket
    version: int

    def seconds_left(self, now: datetime | None = None) -> int:
        moment = now or datetime.now(UTC)
        expires = self.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return max(0, int((expires - moment).total_seconds()))

    def state(self, now: datetime | None = None) -> OrderState:
        if self.status == "complete":
            return OrderState.PAID
        if self.seconds_left(now) <= 0:
            # Orders are cancelled by the expiration worker, so a cancelled order past
            # its deadline is an expired one; payment is refused after the deadline anyway.
            return OrderState.EXPIRED
        if self.status in PAYABLE_STATUSES:
            return OrderState.PAYABLE
        return OrderState.CANCELLED


def format_seconds(seconds: int) -> str:
    """`m:ss`, as the countdown shows it."""
    minutes, rest = divmod(max(0, seconds), 60)
    return f"{minutes}:{rest:02d}"
