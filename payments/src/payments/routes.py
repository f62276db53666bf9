from fastapi import APIRouter

from payments.deps import CheckoutDep
from payments.schemas import PaymentCreate, PaymentPublic
from ticketing_common.auth import RequireUser

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post("", status_code=201)
async def create_payment(
    body: PaymentCreate, user: RequireUser, checkout: CheckoutDep
) -> PaymentPublic:
    """Pay an order of the signed-in user with a Stripe card token, card or PaymentMethod."""
    payment = await checkout.pay(user.id, body.order_id, body.token)
    return PaymentPublic(id=str(payment["_id"]))
