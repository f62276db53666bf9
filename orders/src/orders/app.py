"""The orders service, declared: its state, listeners, expiry sweep and app (`create_app`)."""

from datetime import timedelta

from orders.config import SERVICE, Settings, get_settings
from orders.deps import State
from orders.events.listeners import listeners_of
from orders.repository import Orders, TicketReplicas
from orders.routes import router
from orders.service import OrderService
from orders.sweeper import ExpirySweeper
from ticketing_common.app import Opened, Service, app_factory


async def open_state(opened: Opened[Settings]) -> State:
    settings = opened.settings
    orders = Orders(opened.db.orders, opened.outbox, settings.MAX_OPEN_ORDERS_PER_USER)
    await orders.create_indexes()
    window = timedelta(seconds=settings.EXPIRATION_WINDOW_SECONDS)
    replicas = TicketReplicas(opened.db.tickets)
    service = OrderService(orders, replicas, window, settings.REPLICA_WAIT_SECONDS)
    sweeper = ExpirySweeper(
        service, settings.EXPIRATION_GRACE_SECONDS, settings.EXPIRATION_SWEEP_INTERVAL_SECONDS
    )
    return State(**opened.base(), order_service=service, expiry_sweeper=sweeper, orders=orders)


create_app = app_factory(
    Service(
        name=SERVICE,
        title="Ticketing orders",
        outbox=lambda db: [db.orders],
        router=router,
        state=open_state,
        listeners=lambda state: listeners_of(state["order_service"]),
        tasks=lambda state: [state["expiry_sweeper"]],
    ),
    get_settings,
)
