"""The payments service, declared: its state, listeners, refund task and app (`create_app`)."""

import logging

from payments.config import SERVICE, Settings, get_settings
from payments.deps import State
from payments.events.listeners import listeners_of
from payments.gateway import StripeGateway
from payments.metrics import PaymentOutcomes
from payments.reconciler import RefundReconciler
from payments.repository import OrderReplicas, Payments, StripeEvents
from payments.routes import router
from payments.service import PaymentService
from ticketing_common.app import Opened, Service, app_factory

logger = logging.getLogger("payments.app")


async def open_state(opened: Opened[Settings]) -> State:
    settings = opened.settings
    gateway = StripeGateway(
        settings.STRIPE_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_API_VERSION,
    )
    opened.close_with(gateway.close)
    outcomes = PaymentOutcomes(opened.metrics)
    orders = OrderReplicas(opened.db.orders)
    payments = Payments(opened.db.payments, opened.outbox)
    await payments.create_indexes()
    refunds = RefundReconciler(
        payments,
        gateway,
        interval=settings.REFUND_INTERVAL_SECONDS,
        retry_min=settings.REFUND_RETRY_MIN_SECONDS,
        retry_max=settings.REFUND_RETRY_MAX_SECONDS,
        max_attempts=settings.REFUND_MAX_ATTEMPTS,
        # A try makes two Stripe calls (look for a refund, create one).
        lease=2 * settings.STRIPE_TIMEOUT_SECONDS + 5,
        outcomes=outcomes,
    )
    stripe_events = StripeEvents(opened.db.stripe_events)
    service = PaymentService(
        orders,
        payments,
        stripe_events,
        gateway,
        refunds,
        settings.PAYMENT_CLAIM_TIMEOUT_SECONDS,
        outcomes,
        settings.REPLICA_WAIT_SECONDS,
    )
    if settings.STRIPE_WEBHOOK_SECRET is None:
        logger.warning("STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks are refused")
    return State(
        **opened.base(),
        settings=settings,
        orders=orders,
        payments=payments,
        refunds=refunds,
        stripe_events=stripe_events,
        payment_service=service,
    )


create_app = app_factory(
    Service(
        name=SERVICE,
        title="Ticketing payments",
        state=open_state,
        outbox=lambda db: [db.payments],
        listeners=lambda state: listeners_of(state["payment_service"]),
        tasks=lambda state: [state["refunds"]],
        router=router,
    ),
    get_settings,
)
