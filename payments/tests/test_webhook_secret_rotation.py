"""Rotating the webhook signing secret drops no webhook: while `STRIPE_WEBHOOK_SECRET_PREVIOUS`
is set, an event signed with it is accepted as well as one signed with the new secret;
one signed with neither is refused (docs/SPEC.md §3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from payments.config import Settings
from ticketing_testing import random_id
from ticketing_testing.api import PAYMENTS
from ticketing_testing.checkout import PaymentsService, payments_settings, running_payments
from ticketing_testing.stripe import LocalStripe

WEBHOOK = f"{PAYMENTS}/webhooks/stripe"
NEW = "whsec_rotation_new"
OLD = "whsec_rotation_old"
RECEIVED = {"received": True}
INVALID_SIGNATURE = {"errors": [{"message": "Invalid signature"}]}


def signed(secret: str) -> tuple[bytes, str]:
    """A Stripe event (no payment in it) and its `Stripe-Signature` by `secret`, as Stripe
    signs: HMAC-SHA256 of `<timestamp>.<body>`."""
    event = {
        "id": f"evt_{random_id()}",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": f"cus_{random_id()}", "object": "customer"}},
    }
    body = json.dumps(event).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return body, f"t={timestamp},v1={digest.hexdigest()}"


async def deliver(service: PaymentsService, secret: str) -> Any:
    body, signature = signed(secret)
    headers = {"content-type": "application/json", "stripe-signature": signature}
    response = await service.http.post(WEBHOOK, content=body, headers=headers)
    return response.status_code, response.json()


@asynccontextmanager
async def payments(
    jetstream_clean: str, localstripe: LocalStripe, **secrets: str
) -> AsyncIterator[PaymentsService]:
    settings: Settings = payments_settings(jetstream_clean, localstripe.url, **secrets)
    async with running_payments(settings) as service:
        yield service


async def test_during_a_rotation_both_the_new_and_the_previous_secret_verify(
    jetstream_clean: str, localstripe: LocalStripe
) -> None:
    async with payments(
        jetstream_clean,
        localstripe,
        STRIPE_WEBHOOK_SECRET=NEW,
        STRIPE_WEBHOOK_SECRET_PREVIOUS=OLD,
    ) as service:
        assert await deliver(service, OLD) == (200, RECEIVED)
        assert await deliver(service, NEW) == (200, RECEIVED)
        assert await deliver(service, "whsec_someone_elses") == (400, INVALID_SIGNATURE)


async def test_once_the_previous_secret_is_unset_it_no_longer_verifies(
    jetstream_clean: str, localstripe: LocalStripe
) -> None:
    async with payments(jetstream_clean, localstripe, STRIPE_WEBHOOK_SECRET=NEW) as service:
        assert await deliver(service, OLD) == (400, INVALID_SIGNATURE)
        assert await deliver(service, NEW) == (200, RECEIVED)


async def test_an_empty_previous_secret_is_no_secret(
    jetstream_clean: str, localstripe: LocalStripe
) -> None:
    # An optional key of a Kubernetes secret may be set to the empty string.
    async with payments(
        jetstream_clean, localstripe, STRIPE_WEBHOOK_SECRET=NEW, STRIPE_WEBHOOK_SECRET_PREVIOUS=" "
    ) as service:
        assert await deliver(service, NEW) == (200, RECEIVED)
        assert await deliver(service, " ") == (400, INVALID_SIGNATURE)
