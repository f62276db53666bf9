from typing import Annotated

from fastapi import Depends, Request

from payments.checkout import Checkout


def get_checkout(request: Request) -> Checkout:
    checkout: Checkout = request.state.checkout
    return checkout


CheckoutDep = Annotated[Checkout, Depends(get_checkout)]
