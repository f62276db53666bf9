"""The orders service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends

from orders.config import Settings
from orders.repository import Orders, TicketReplicas
from ticketing_common.state import ServiceState, from_state


class State(ServiceState):
    settings: Settings
    orders: Orders
    replicas: TicketReplicas


OrdersDep = Annotated[Orders, Depends(from_state(State, lambda state: state["orders"]))]
ReplicasDep = Annotated[TicketReplicas, Depends(from_state(State, lambda state: state["replicas"]))]
SettingsDep = Annotated[Settings, Depends(from_state(State, lambda state: state["settings"]))]
