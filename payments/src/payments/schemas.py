from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from payments.models import Payment, PaymentStatus
from ticketing_common.mongo import is_object_id
from ticketing_common.schemas import RequestBody, Trimmed

# What Stripe.js `createToken` gives (`tok_`), a card id (`card_`) or a PaymentMethod (`pm_`).
TOKEN_PREFIXES = ("tok_", "card_", "pm_")
# Stripe's ids are at most 255 characters. A longer token is the client's mistake, and
# sent on it is not read as one: a `tok_` goes into the URL path, which localstripe
# refuses past 8 KiB with a plain-text 400 that the stripe library reports as an outage.
TOKEN_MAX_LENGTH = 255


def _token(value: str) -> str:
    if not value:
        raise ValueError("Token is required")
    if not value.startswith(TOKEN_PREFIXES):
        raise ValueError("Token must be a Stripe card token (tok_...), card_... or pm_... id")
    if len(value) > TOKEN_MAX_LENGTH:
        raise ValueError(f"Token must be at most {TOKEN_MAX_LENGTH} characters")
    return value


def _order_id(value: str) -> str:
    if not value:
        raise ValueError("Order id is required")
    if not is_object_id(value):
        raise ValueError("Order id must be a valid id")
    return value


class PaymentCreate(RequestBody):
    token: Annotated[str, Trimmed, AfterValidator(_token)]
    order_id: Annotated[str, Trimmed, AfterValidator(_order_id)] = Field(alias="orderId")


class PaymentPublic(BaseModel):
    """A payment: `{id}` once paid; with `status: "requires_action"` and the intent's
    `clientSecret` while the buyer must finish 3-D Secure in the browser."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    status: str | None = None
    client_secret: str | None = Field(default=None, alias="clientSecret")

    @classmethod
    def of(cls, payment: Payment) -> PaymentPublic:
        if payment.status is PaymentStatus.AUTHENTICATING:
            return cls(id=payment.id, status="requires_action", client_secret=payment.client_secret)
        return cls(id=payment.id)
