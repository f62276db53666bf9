from fastapi import APIRouter, Response

from ticketing_common.auth import RequireUser
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.money import to_cents
from ticketing_common.mongo import path_object_id
from ticketing_common.paging import CursorQuery, LimitQuery, PageRequest
from tickets.deps import TicketServiceDep
from tickets.schemas import TicketCreate, TicketPublic, TicketUpdate

router = APIRouter(prefix="/api/tickets", tags=["tickets"], route_class=ServiceRoute)


@router.post("", status_code=201, response_model_exclude_none=True)
async def create_ticket(
    body: TicketCreate, user: RequireUser, service: TicketServiceDep
) -> TicketPublic:
    """Put a ticket up for sale."""
    ticket = await service.create(user.id, body.title, to_cents(body.price))
    return TicketPublic.model_validate(ticket)


@router.get("", response_model_exclude_none=True)
async def list_tickets(
    response: Response,
    service: TicketServiceDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> list[TicketPublic]:
    """The tickets not reserved, oldest first, a page at a time: the `Link` header names
    the next page, if any."""
    request = PageRequest.parse(limit, cursor)
    page = await service.unreserved(request)
    response.headers.update(page.links.link_header(router.prefix, request.limit))
    return [TicketPublic.model_validate(ticket) for ticket in page.tickets]


@router.get("/{ticket_id}", response_model_exclude_none=True)
async def show_ticket(ticket_id: str, service: TicketServiceDep) -> TicketPublic:
    """One ticket, with `orderId` while an order holds it."""
    return TicketPublic.model_validate(await service.show(path_object_id(ticket_id)))


@router.put("/{ticket_id}", response_model_exclude_none=True)
async def update_ticket(
    ticket_id: str, body: TicketUpdate, user: RequireUser, service: TicketServiceDep
) -> TicketPublic:
    """Change title and price of one's own ticket while no order holds it."""
    ticket = await service.edit(
        user.id, path_object_id(ticket_id), body.title, to_cents(body.price)
    )
    return TicketPublic.model_validate(ticket)
