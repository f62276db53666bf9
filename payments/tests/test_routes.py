import asyncio
from datetime import timedelta
from typing import Any

import pytest
from payments_support import (
    PAYMENTS,
    LocalStripe,
    Probe,
    Service,
    cents,
    errors,
    fields,
    order_cancelled,
    payments_settings,
    running_service,
    seed_order,
    stripe_proxy,
    yielding_database,
)

from payments.config import Settings
from payments.repository import PaymentStatus
from ticketing_common.events import Subjects
from ticketing_common.mongo import utcnow
from ticketing_common.testing import cookie_for, free_port, random_id

DECLINED = "Your card was declined."


class TestCreatePayment:
    async def test_payment_charges_the_exact_amount_in_cents(
        self, service: Service, probe: Probe, localstripe: LocalStripe
    ) -> None:
        user = random_id()
        order_id = await seed_order(service, probe, user, price=19.99)

        response = await service.pay(order_id, "pm_card_visa", cookie_for(user))

        assert response.status_code == 201, response.text
        payment_id = response.json()["id"]
        assert response.json() == {"id": payment_id}
        [intent] = await localstripe.payment_intents()
        assert intent["amount"] == 1999
        assert intent["currency"] == "usd"
        assert intent["status"] == "succeeded"
        assert intent["metadata"] == {"orderId": order_id}
        stored = await service.payment(order_id)
        assert stored is not None
        assert stored["status"] == PaymentStatus.PAID
        assert (stored["stripeId"], stored["amount"]) == (intent["id"], 1999)
        assert str(stored["_id"]) == payment_id
