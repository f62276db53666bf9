from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from orders.config import Settings, get_settings
from orders.events.listeners import (
    ExpirationCompleteListener,
    PaymentCreatedListener,
    TicketCreatedListener,
    TicketUpdatedListener,
)
from orders.repository import Orders, TicketReplicas
from orders.routes import router
from ticketing_common.auth import SessionCodec
from ticketing_common.events import EventBus, Outbox
from ticketing_common.mongo import connect_mongo
from ticketing_common.service import new_app

SERVICE = "orders"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo(settings.MONGO_URI, SERVICE)
        bus = EventBus(SERVICE, settings)
        outbox: Outbox | None = None
        try:
            await bus.connect()
            outbox = Outbox(bus, [mongo.db.orders])
            orders = Orders(mongo.db.orders, outbox)
            replicas = TicketReplicas(mongo.db.tickets)
            await orders.create_indexes()
            bus.add_listener(TicketCreatedListener(replicas))
            bus.add_listener(TicketUpdatedListener(replicas))
            bus.add_listener(ExpirationCompleteListener(orders))
            bus.add_listener(PaymentCreatedListener(orders))
            await outbox.republish()
            outbox.start(settings.OUTBOX_INTERVAL_SECONDS)
            await bus.start_listeners(recreate=mongo.in_memory)
            yield {
                "settings": settings,
                "mongo": mongo,
                "bus": bus,
                "orders": orders,
                "replicas": replicas,
            }
        finally:
            if outbox is not None:
                await outbox.stop()
            await bus.close()
            await mongo.close()

    async def ready(request: Request) -> dict[str, bool]:
        return {
            "database": await request.state.mongo.ping(),
            "events": await request.state.bus.ready(),
        }

    app = new_app(
        title="Ticketing orders",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY),
        ready=ready,
    )
    app.include_router(router)
    return app
