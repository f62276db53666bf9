from typing import Annotated

from fastapi import Depends, Request

from payments.checkout import Checkout
from payments.config import Settings
from payments.repository import StripeEvents


async def get_checkout(request: Request) -> Checkout:
    checkout: Checkout = request.state.checkout
    return checkout


async def get_stripe_events(request: Request) -> StripeEvents:
    events: StripeEvents = request.state.stripe_events
    return events


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


CheckoutDep = Annotated[Checkout, Depends(get_checkout)]
StripeEventsDep = Annotated[StripeEvents, Depends(get_stripe_events)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
