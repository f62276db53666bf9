"""The orders service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends

from orders.repository import Orders
from orders.service import OrderService
from orders.sweeper import ExpirySweeper
from ticketing_common.state import ServiceState, from_state


class State(ServiceState):
    """The service the routes and listeners call, the sweep it runs, and the orders
    repository under it (which the tests inspect)."""

    order_service: OrderService
    expiry_sweeper: ExpirySweeper
    orders: Orders


OrderServiceDep = Annotated[OrderService, Depends(from_state(State, lambda s: s["order_service"]))]
