"""The payments service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends

from payments.checkout import Checkout
from payments.config import Settings
from payments.reconciler import RefundReconciler
from payments.repository import OrderReplicas, Payments, StripeEvents
from ticketing_common.state import ServiceState, from_state


class State(ServiceState):
    settings: Settings
    orders: OrderReplicas
    payments: Payments
    refunds: RefundReconciler
    checkout: Checkout
    stripe_events: StripeEvents


CheckoutDep = Annotated[Checkout, Depends(from_state(State, lambda state: state["checkout"]))]
StripeEventsDep = Annotated[
    StripeEvents, Depends(from_state(State, lambda state: state["stripe_events"]))
]
SettingsDep = Annotated[Settings, Depends(from_state(State, lambda state: state["settings"]))]
