"""The tickets service, declared: its state, listeners and app (`create_app`)."""

from ticketing_common.app import Opened, Service, app_factory
from ticketing_common.events import Publisher, TicketUpdatedEvent
from tickets.config import SERVICE, Settings, get_settings
from tickets.deps import State
from tickets.events.listeners import listeners_of
from tickets.repository import Tickets
from tickets.routes import router
from tickets.service import TicketService


async def open_state(opened: Opened[Settings]) -> State:
    tickets = Tickets(opened.db.tickets, opened.outbox, opened.settings.CANCELLED_ORDERS_KEPT)
    await tickets.create_indexes()
    service = TicketService(tickets, Publisher(opened.bus, TicketUpdatedEvent))
    return State(**opened.base(), tickets=tickets, ticket_service=service)


create_app = app_factory(
    Service(
        name=SERVICE,
        title="Ticketing tickets",
        router=router,
        state=open_state,
        outbox=lambda db: [db.tickets],
        listeners=lambda state: listeners_of(state["ticket_service"]),
    ),
    get_settings,
)
