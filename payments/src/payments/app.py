import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from payments.checkout import Checkout
from payments.config import SERVICE, Settings, get_settings
from payments.events.listeners import OrderCancelledListener, OrderCreatedListener
from payments.gateway import StripeGateway
from payments.metrics import PaymentOutcomes
from payments.reconciler import RefundReconciler
from payments.repository import OrderReplicas, Payments, StripeEvents
from payments.routes import router
from ticketing_common.auth import SessionCodec
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import MongoConnector, connect_mongo
from ticketing_common.service import event_runtime, new_app

logger = logging.getLogger("payments.app")


def create_app(
    settings: Settings | None = None, *, connect: MongoConnector = connect_mongo
) -> FastAPI:
    """The app; `connect` opens its database (a test may pass its own connector)."""
    settings = settings or get_settings()
    metrics = Metrics(SERVICE)
    outcomes = PaymentOutcomes(metrics)

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
            async with event_runtime(
                SERVICE, settings, mongo, [mongo.db.payments], metrics
            ) as events:
                orders = OrderReplicas(mongo.db.orders)
                payments = Payments(mongo.db.payments, events.outbox)
                await payments.create_indexes()
                refunds = RefundReconciler(
                    payments,
                    gateway,
                    retry_min=settings.REFUND_RETRY_MIN_SECONDS,
                    retry_max=settings.REFUND_RETRY_MAX_SECONDS,
                    max_attempts=settings.REFUND_MAX_ATTEMPTS,
                    # A try makes two Stripe calls (look for a refund, create one).
                    lease=2 * settings.STRIPE_TIMEOUT_SECONDS + 5,
                    outcomes=outcomes,
                )
                checkout = Checkout(
                    orders,
                    payments,
                    gateway,
                    refunds,
                    settings.PAYMENT_CLAIM_TIMEOUT_SECONDS,
                    outcomes,
                )
                events.listen(
                    OrderCreatedListener(orders), OrderCancelledListener(orders, checkout)
                )
                await events.start()
                if settings.STRIPE_WEBHOOK_SECRET is None:
                    logger.warning("STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks are refused")
                refunds.start(settings.REFUND_INTERVAL_SECONDS)
                try:
                    yield {
                        "settings": settings,
                        "mongo": mongo,
                        "bus": events.bus,
                        "orders": orders,
                        "payments": payments,
                        "checkout": checkout,
                        "refunds": refunds,
                        "stripe_events": StripeEvents(mongo.db.stripe_events),
                    }
                finally:
                    await refunds.stop()
        finally:
            await gateway.close()
            await mongo.close()

    app = new_app(
        title="Ticketing payments",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY, previous_jwt_key=settings.JWT_KEY_PREVIOUS),
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=metrics,
    )
    app.include_router(router)
    return app
