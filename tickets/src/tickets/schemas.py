"""Request and response bodies of the tickets API (camelCase on the wire)."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from ticketing_common.money import Price

TITLE_MAX_LENGTH = 200


def _trim(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _title(value: str) -> str:
    if not value:
        raise ValueError("Title is required")
    if len(value) > TITLE_MAX_LENGTH:
        raise ValueError(f"Title must be at most {TITLE_MAX_LENGTH} characters")
    return value


Title = Annotated[str, BeforeValidator(_trim), AfterValidator(_title)]


class _Body(BaseModel):
    # strict: a number is not a title. Price parses on its own (numeric strings allowed,
    # booleans refused).
    model_config = ConfigDict(extra="ignore", strict=True)


class TicketCreate(_Body):
    title: Title
    price: Price


class TicketUpdate(_Body):
    # As the original: an update sends the whole ticket, both fields required.
    title: Title
    price: Price


class TicketPublic(BaseModel):
    """A ticket as the API shows it; `TicketPublic.model_validate(ticket)` reads a `Ticket`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    id: str
    title: str
    price: Price
    user_id: str
    version: int
    order_id: str | None = None
