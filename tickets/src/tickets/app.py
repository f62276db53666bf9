from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from ticketing_common.auth import SessionCodec
from ticketing_common.events import EventBus, Outbox
from ticketing_common.mongo import connect_mongo
from ticketing_common.service import new_app
from tickets.config import SERVICE, Settings, get_settings
from tickets.events.listeners import OrderCancelledListener, OrderCreatedListener
from tickets.events.publishers import TicketUpdatedPublisher
from tickets.repository import Tickets
from tickets.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo(settings.MONGO_URI, SERVICE)
        bus = EventBus(SERVICE, settings)
        outbox: Outbox | None = None
        try:
            await bus.connect()
            collection = mongo.db.tickets
            outbox = Outbox(bus, [collection])
            tickets = Tickets(collection, outbox)
            await tickets.create_indexes()
            bus.add_listener(OrderCreatedListener(tickets, TicketUpdatedPublisher(bus)))
            bus.add_listener(OrderCancelledListener(tickets))
            await outbox.republish()
            outbox.start(settings.OUTBOX_INTERVAL_SECONDS)
            # Consumers exist before /readyz says ready, so no earlier event is missed;
            # with an in-memory database they replay the stream to rebuild the state.
            await bus.start_listeners(recreate=mongo.in_memory)
            yield {"mongo": mongo, "bus": bus, "tickets": tickets}
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
        title="Ticketing tickets",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY),  # read only: auth writes the cookie
        ready=ready,
    )
    app.include_router(router)
    return app
