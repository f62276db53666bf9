"""The tickets service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends

from ticketing_common.state import ServiceState, from_state
from tickets.repository import Tickets
from tickets.service import TicketService


class State(ServiceState):
    tickets: Tickets
    ticket_service: TicketService


TicketServiceDep = Annotated[
    TicketService, Depends(from_state(State, lambda state: state["ticket_service"]))
]
