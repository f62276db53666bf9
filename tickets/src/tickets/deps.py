from typing import Annotated

from fastapi import Depends, Request

from tickets.repository import Tickets


async def get_tickets(request: Request) -> Tickets:
    tickets: Tickets = request.state.tickets
    return tickets


TicketsDep = Annotated[Tickets, Depends(get_tickets)]
