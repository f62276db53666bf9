import logging

import stripe
from fastapi import APIRouter, Request, Response

from payments.deps import PaymentServiceDep, SettingsDep
from payments.gateway import Intent
from payments.models import PaymentStatus
from payments.schemas import PaymentCreate, PaymentPublic
from ticketing_common.auth import RequireUser
from ticketing_common.errors import BadRequestError, PaymentProviderError
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.mongo import path_object_id

router = APIRouter(prefix="/api/payments", tags=["payments"], route_class=ServiceRoute)
logger = logging.getLogger("payments.webhooks")


@router.post("", status_code=201, response_model_exclude_none=True, response_model_by_alias=True)
async def create_payment(
    body: PaymentCreate, user: RequireUser, service: PaymentServiceDep, response: Response
) -> PaymentPublic:
    """Pay an order of the signed-in user with a Stripe card token, card or PaymentMethod.
    201 when paid; 202 with the client secret when the card asks for 3-D Secure."""
    payment = await service.pay(user.id, body.order_id, body.token)
    if payment.status is PaymentStatus.AUTHENTICATING:
        response.status_code = 202
    return PaymentPublic.of(payment)


@router.post("/{payment_id}/complete", response_model_exclude_none=True)
async def complete_payment(
    payment_id: str, user: RequireUser, service: PaymentServiceDep
) -> PaymentPublic:
    """After the browser's 3-D Secure step: record the outcome Stripe has for it."""
    payment = await service.complete(user.id, path_object_id(payment_id))
    return PaymentPublic.of(payment)


def verified_event(payload: bytes, signature: str | None, secrets: list[str]) -> stripe.Event:
    """The event, once its signature verifies with one of `secrets` (the current one,
    then the previous during a rotation); the last one's refusal otherwise."""
    for secret in secrets[:-1]:
        try:
            event: stripe.Event = stripe.Webhook.construct_event(payload, signature, secret)
            return event
        except stripe.SignatureVerificationError:
            continue
    event = stripe.Webhook.construct_event(payload, signature, secrets[-1])
    return event


@router.post("/webhooks/stripe")
async def stripe_webhook(
    request: Request, service: PaymentServiceDep, settings: SettingsDep
) -> dict[str, bool]:
    """Stripe's signed events. The signature covers the raw body, so it is read as bytes;
    no session, no body model. A replayed event id changes nothing."""
    secrets = settings.webhook_secrets
    if not secrets:
        logger.error("a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set")
        raise PaymentProviderError("Webhooks are not configured")
    payload = await request.body()
    try:
        event = verified_event(payload, request.headers.get("stripe-signature"), secrets)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        logger.warning("refused a webhook: %s", str(exc)[:200])
        raise BadRequestError("Invalid signature") from exc
    intent = Intent.of(event.data.object) if event.type.startswith("payment_intent.") else None
    await service.stripe_event(event.id, event.type, intent)
    return {"received": True}
