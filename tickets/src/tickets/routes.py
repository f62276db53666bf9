from fastapi import APIRouter, Response

from ticketing_common.auth import RequireUser
from ticketing_common.errors import (
    BadRequestError,
    ConflictError,
    NotAuthorizedError,
    NotFoundError,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import path_object_id
from ticketing_common.paging import CursorQuery, LimitQuery, PageRequest
from ticketing_common.service import ServiceRoute
from tickets.deps import TicketsDep
from tickets.schemas import TicketCreate, TicketPublic, TicketUpdate

router = APIRouter(prefix="/api/tickets", tags=["tickets"], route_class=ServiceRoute)

RESERVED = "Cannot edit a reserved ticket"


@router.post("", status_code=201, response_model_exclude_none=True)
async def create_ticket(body: TicketCreate, user: RequireUser, tickets: TicketsDep) -> TicketPublic:
    """Put a ticket up for sale."""
    ticket = await tickets.create(body.title, to_cents(body.price), user.id)
    return TicketPublic.model_validate(ticket)


@router.get("", response_model_exclude_none=True)
async def list_tickets(
    response: Response, tickets: TicketsDep, limit: LimitQuery = None, cursor: CursorQuery = None
) -> list[TicketPublic]:
    """The tickets not reserved, oldest first, a page at a time: the `Link` header names
    the next page, if any."""
    request = PageRequest.parse(limit, cursor)
    found, page = await tickets.list_unreserved(request)
    response.headers.update(page.link_header(router.prefix, request.limit))
    return [TicketPublic.model_validate(ticket) for ticket in found]


@router.get("/{ticket_id}", response_model_exclude_none=True)
async def show_ticket(ticket_id: str, tickets: TicketsDep) -> TicketPublic:
    """One ticket, with `orderId` while an order holds it."""
    ticket = await tickets.get(path_object_id(ticket_id))
    if ticket is None:
        raise NotFoundError()
    return TicketPublic.model_validate(ticket)


@router.put("/{ticket_id}", response_model_exclude_none=True)
async def update_ticket(
    ticket_id: str, body: TicketUpdate, user: RequireUser, tickets: TicketsDep
) -> TicketPublic:
    """Change title and price of one's own ticket while no order holds it."""
    object_id = path_object_id(ticket_id)
    ticket = await tickets.get(object_id)
    if ticket is None:
        raise NotFoundError()
    # Ownership before the reservation, so others learn nothing about the ticket.
    if ticket.user_id != user.id:
        raise NotAuthorizedError()
    if ticket.order_id is not None:
        raise BadRequestError(RESERVED)
    updated = await tickets.update_details(ticket, body.title, to_cents(body.price))
    if updated is None:
        current = await tickets.get(object_id)
        if current is not None and current.order_id is not None:
            raise BadRequestError(RESERVED)
        raise ConflictError()
    return TicketPublic.model_validate(updated)
