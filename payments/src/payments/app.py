from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from payments.checkout import Checkout
from payments.config import Settings, get_settings
from payments.events.listeners import OrderCancelledListener, OrderCreatedListener
from payments.gateway import StripeGateway
from payments.repository import OrderReplicas, Payments
from payments.routes import router
from ticketing_common.auth import SessionCodec
from ticketing_common.events import EventBus, Outbox
from ticketing_common.mongo import connect_mongo
from ticketing_common.service import new_app

SERVICE = "payments"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo(settings.MONGO_URI, SERVICE)
        bus = EventBus(SERVICE, settings)
        gateway = StripeGateway(
            settings.STRIPE_KEY,
            settings.STRIPE_API_BASE,
            settings.STRIPE_TIMEOUT_SECONDS,
            settings.STRIPE_API_VERSION,
        )
        outbox: Outbox | None = None
        try:
            await bus.connect()
            outbox = Outbox(bus, [mongo.db.payments])
            orders = OrderReplicas(mongo.db.orders)
            payments = Payments(mongo.db.payments, outbox)
            await payments.create_indexes()
            checkout = Checkout(orders, payments, gateway, settings.PAYMENT_CLAIM_TIMEOUT_SECONDS)
            bus.add_listener(OrderCreatedListener(orders))
            bus.add_listener(OrderCancelledListener(orders, checkout))
            await outbox.republish()
            outbox.start(settings.OUTBOX_INTERVAL_SECONDS)
            await bus.start_listeners(recreate=mongo.in_memory)
            yield {
                "settings": settings,
                "mongo": mongo,
                "bus": bus,
                "orders": orders,
                "payments": payments,
                "checkout": checkout,
            }
        finally:
            if outbox is not None:
                await outbox.stop()
            await bus.close()
            await gateway.close()
            await mongo.close()

    async def ready(request: Request) -> dict[str, bool]:
        return {
            "database": await request.state.mongo.ping(),
            "events": await request.state.bus.ready(),
        }

    app = new_app(
        title="Ticketing payments",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY),
        ready=ready,
    )
    app.include_router(router)
    return app
