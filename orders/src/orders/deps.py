from typing import Annotated

from fastapi import Depends, Request

from orders.config import Settings
from orders.repository import Orders, TicketReplicas


async def get_orders(request: Request) -> Orders:
    orders: Orders = request.state.orders
    return orders


async def get_replicas(request: Request) -> TicketReplicas:
    replicas: TicketReplicas = request.state.replicas
    return replicas


async def get_service_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


OrdersDep = Annotated[Orders, Depends(get_orders)]
ReplicasDep = Annotated[TicketReplicas, Depends(get_replicas)]
SettingsDep = Annotated[Settings, Depends(get_service_settings)]
