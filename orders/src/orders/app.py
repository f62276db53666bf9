"""The orders service, declared: its state, listeners, expiry sweep and app (`create_app`)."""

from orders.config import SERVICE, Settings, get_settings
from orders.deps import State
from orders.events.listeners import (
    ExpirationCompleteListener,
    PaymentCreatedListener,
    TicketCreatedListener,
    TicketUpdatedListener,
)
from orders.repository import Orders, TicketReplicas
from orders.routes import router
from orders.sweeper import ExpirySweeper
from ticketing_common.app import Opened, Service, app_factory


async def open_state(opened: Opened[Settings]) -> State:
    settings = opened.settings
    orders = Orders(opened.db.orders, opened.outbox, settings.MAX_OPEN_ORDERS_PER_USER)
    await orders.create_indexes()
    return State(
        **opened.base(),
        settings=settings,
        orders=orders,
        replicas=TicketReplicas(opened.db.tickets),
    )


def expiry_sweeper(state: State) -> ExpirySweeper:
    settings = state["settings"]
    return ExpirySweeper(
        state["orders"],
        settings.EXPIRATION_GRACE_SECONDS,
        settings.EXPIRATION_SWEEP_INTERVAL_SECONDS,
    )


create_app = app_factory(
    Service(
        name=SERVICE,
        title="Ticketing orders",
        router=router,
        state=open_state,
        outbox=lambda db: [db.orders],
        listeners=lambda state: [
            TicketCreatedListener(state["replicas"]),
            TicketUpdatedListener(state["replicas"], state["orders"]),
            ExpirationCompleteListener(state["orders"]),
            PaymentCreatedListener(state["orders"]),
        ],
        tasks=lambda state: [expiry_sweeper(state)],
    ),
    get_settings,
)
