"""The payments service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends

from payments.config import Settings
from payments.reconciler import RefundReconciler
from payments.repository import OrderReplicas, Payments, StripeEvents
from payments.service import PaymentService
from ticketing_common.state import ServiceState, from_state


class State(ServiceState):
    settings: Settings
    orders: OrderReplicas
    payments: Payments
    refunds: RefundReconciler
    payment_service: PaymentService
    stripe_events: StripeEvents


PaymentServiceDep = Annotated[
    PaymentService, Depends(from_state(State, lambda state: state["payment_service"]))
]
SettingsDep = Annotated[Settings, Depends(from_state(State, lambda state: state["settings"]))]
