from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from payments.checkout import Checkout
from payments.config import SERVICE, Settings, get_settings
from payments.events.listeners import OrderCancelledListener, OrderCreatedListener
from payments.gateway import StripeGateway
from payments.repository import OrderReplicas, Payments
from payments.routes import router
from ticketing_common.auth import SessionCodec
from ticketing_common.mongo import MongoConnector, connect_mongo
from ticketing_common.service import event_runtime, new_app


def create_app(
    settings: Settings | None = None, *, connect: MongoConnector = connect_mongo
) -> FastAPI:
    """The app; `connect` opens its database (a test may pass its own connector)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect(settings.MONGO_URI, SERVICE)
        gateway = StripeGateway(
            settings.STRIPE_KEY,
            settings.STRIPE_API_BASE,
            settings.STRIPE_TIMEOUT_SECONDS,
            settings.STRIPE_API_VERSION,
        )
        try:
            async with event_runtime(SERVICE, settings, mongo, [mongo.db.payments]) as events:
                orders = OrderReplicas(mongo.db.orders)
                payments = Payments(mongo.db.payments, events.outbox)
                await payments.create_indexes()
                checkout = Checkout(
                    orders, payments, gateway, settings.PAYMENT_CLAIM_TIMEOUT_SECONDS
                )
                events.listen(
                    OrderCreatedListener(orders), OrderCancelledListener(orders, checkout)
                )
                await events.start()
                yield {
                    "settings": settings,
                    "mongo": mongo,
                    "bus": events.bus,
                    "orders": orders,
                    "payments": payments,
                    "checkout": checkout,
                }
        finally:
            await gateway.close()
            await mongo.close()

    app = new_app(
        title="Ticketing payments",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY),
    )
    app.include_router(router)
    return app
