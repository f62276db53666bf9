from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from orders.config import SERVICE, Settings, get_settings
from orders.events.listeners import (
    ExpirationCompleteListener,
    PaymentCreatedListener,
    TicketCreatedListener,
    TicketUpdatedListener,
)
from orders.repository import Orders, TicketReplicas
from orders.routes import router
from orders.sweeper import ExpirySweeper
from ticketing_common.auth import SessionCodec
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import MongoConnector, connect_mongo
from ticketing_common.service import event_runtime, new_app


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
                SERVICE, settings, mongo, [mongo.db.orders], metrics
            ) as events:
                orders = Orders(mongo.db.orders, events.outbox, settings.MAX_OPEN_ORDERS_PER_USER)
                replicas = TicketReplicas(mongo.db.tickets)
                await orders.create_indexes()
                events.listen(
                    TicketCreatedListener(replicas),
                    TicketUpdatedListener(replicas, orders),
                    ExpirationCompleteListener(orders),
                    PaymentCreatedListener(orders),
                )
                await events.start()
                sweeper = ExpirySweeper(
                    orders,
                    settings.EXPIRATION_GRACE_SECONDS,
                    settings.EXPIRATION_SWEEP_INTERVAL_SECONDS,
                )
                sweeper.start()
                try:
                    yield {
                        "settings": settings,
                        "mongo": mongo,
                        "bus": events.bus,
                        "orders": orders,
                        "replicas": replicas,
                    }
                finally:
                    await sweeper.stop()
        finally:
            await mongo.close()

    app = new_app(
        title="Ticketing orders",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY, previous_jwt_key=settings.JWT_KEY_PREVIOUS),
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=metrics,
    )
    app.include_router(router)
    return app
