from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ticketing_common.mongo import is_object_id

# What Stripe.js `createToken` gives (`tok_`), a card id (`card_`) or a PaymentMethod (`pm_`).
TOKEN_PREFIXES = ("tok_", "card_", "pm_")


def _trim(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _token(value: str) -> str:
    if not value:
        raise ValueError("Token is required")
    if not value.startswith(TOKEN_PREFIXES):
        raise ValueError("Token must be a Stripe card token (tok_...), card_... or pm_... id")
    return value


def _order_id(value: str) -> str:
    if not value:
        raise ValueError("Order id is required")
    if not is_object_id(value):
        raise ValueError("Order id must be a valid id")
    return value


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    token: Annotated[str, BeforeValidator(_trim), AfterValidator(_token)]
    order_id: Annotated[str, BeforeValidator(_trim), AfterValidator(_order_id)] = Field(
        alias="orderId"
    )


class PaymentPublic(BaseModel):
    id: str
