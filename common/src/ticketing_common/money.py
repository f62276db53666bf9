"""Prices: integer cents inside, `Decimal` at the edges, never float arithmetic.

The API and the events carry a price as a JSON number in dollars with at most two
decimals (docs/SPEC.md §3, §4). Input may also be a numeric string such as "10.00".
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MAX_PRICE = Decimal("999999.99")
CENT = Decimal("0.01")
# A numeric string as JSON would write the number: ASCII digits only. Decimal() alone also
# takes `1_000.00` and non-ASCII digits (Arabic-Indic `10`), which no page or event writes back.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_price(value: Any) -> Decimal:
    """A price > 0, <= 999999.99 with at most two decimals, or ValueError with the reason."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("Price must be a number")
    if isinstance(value, str):
        value = value.strip()
        if not _NUMBER_TEXT.fullmatch(value):
            raise ValueError("Price must be a number")
    try:
        # str() of a float is its shortest round-trip text: 19.99 stays "19.99".
        price = Decimal(value if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError("Price must be a number") from None
    if not price.is_finite():
        raise ValueError("Price must be a number")
    if price <= 0:
        raise ValueError("Price must be greater than 0")
    if price > MAX_PRICE:
        raise ValueError("Price must be at most 999999.99")
    if price != price.quantize(CENT):
        raise ValueError("Price must have at most 2 decimals")
    return price.quantize(CENT)


def to_cents(price: Decimal) -> int:
    return int((price * 100).to_integral_exact())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def price_json(price: Decimal) -> float | int:
    """A price as a JSON number; float only as the carrier of the exact 2-decimal text."""
    return int(price) if price == price.to_integral_value() else float(price)


# A price field of an API body or event payload: validated on input, a JSON number out.
Price = Annotated[
    Decimal,
    BeforeValidator(parse_price),
    PlainSerializer(price_json, return_type=float | int),
]
