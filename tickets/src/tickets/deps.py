from typing import Annotated

from fastapi import Depends, Request

from tickets.service import TicketService


async def get_ticket_service(request: Request) -> TicketService:
    service: TicketService = request.state.ticket_service
    return service


TicketServiceDep = Annotated[TicketService, Depends(get_ticket_service)]
