from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ticketing_common.auth import SessionCodec
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import MongoConnector, connect_mongo
from ticketing_common.service import event_runtime, new_app
from tickets.config import SERVICE, Settings, get_settings
from tickets.events.listeners import OrderCancelledListener, OrderCreatedListener
from tickets.events.publishers import TicketUpdatedPublisher
from tickets.repository import Tickets
from tickets.routes import router
from tickets.service import TicketService


def create_app(
    settings: Settings | None = None, *, connect: MongoConnector = connect_mongo
) -> FastAPI:
    """The app; `connect` opens its database (a test may pass its own connector)."""
    settings = settings or get_settings()
    metrics = Metrics(SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect(settings.MONGO_URI, SERVICE)
        try:
            async with event_runtime(
                SERVICE, settings, mongo, [mongo.db.tickets], metrics
            ) as events:
                tickets = Tickets(mongo.db.tickets, events.outbox, settings.CANCELLED_ORDERS_KEPT)
                await tickets.create_indexes()
                service = TicketService(tickets, TicketUpdatedPublisher(events.bus))
                events.listen(OrderCreatedListener(service), OrderCancelledListener(service))
                await events.start()
                yield {
                    "mongo": mongo,
                    "bus": events.bus,
                    "tickets": tickets,
                    "ticket_service": service,
                }
        finally:
            await mongo.close()

    app = new_app(
        title="Ticketing tickets",
        lifespan=lifespan,
        sessions=SessionCodec(  # read only: auth writes the cookie
            jwt_key=settings.JWT_KEY, previous_jwt_key=settings.JWT_KEY_PREVIOUS
        ),
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=metrics,
    )
    app.include_router(router)
    return app
