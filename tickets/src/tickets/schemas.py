"""Request and response bodies of the tickets API (camelCase on the wire)."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ticketing_common.money import Price
from ticketing_common.schemas import RequestBody, Trimmed

TITLE_MAX_LENGTH = 200


def _title(value: str) -> str:
    if not value:
        raise ValueError("Title is required")
    if len(value) > TITLE_MAX_LENGTH:
        raise ValueError(f"Title must be at most {TITLE_MAX_LENGTH} characters")
    return value


Title = Annotated[str, Trimmed, AfterValidator(_title)]


class TicketCreate(RequestBody):
    title: Title
    price: Price


class TicketUpdate(RequestBody):
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
