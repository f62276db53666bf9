"""Helpers of the tickets tests: requests, events of orders, their delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from ticketing_common.events import (
    EventPayload,
    OrderCancelledEvent,
    OrderCreatedEvent,
    OrderStatus,
)
from ticketing_common.testing import random_id
from ticketing_common.testing.http import signed_in
from ticketing_common.testing.stream import Probe

TICKETS = "/api/tickets"


async def create_ticket(
    client: AsyncClient, user_id: str, title: str = "concert", price: Any = 20
) -> dict[str, Any]:
    response = await client.post(
        TICKETS, json={"title": title, "price": price}, headers=signed_in(user_id)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def order_created(
    ticket_id: str, order_id: str | None = None, price: str = "20", version: int = 0
) -> OrderCreatedEvent:
    return OrderCreatedEvent.model_validate(
        {
            "id": order_id or random_id(),
            "version": version,
            "status": OrderStatus.CREATED,
            "userId": random_id(),
            "expiresAt": datetime.now(UTC) + timedelta(minutes=15),
            "ticket": {"id": ticket_id, "price": price},
        }
    )


def order_cancelled(ticket_id: str, order_id: str, version: int = 1) -> OrderCancelledEvent:
    return OrderCancelledEvent.model_validate(
        {"id": order_id, "version": version, "ticket": {"id": ticket_id}}
    )


async def deliver(probe: Probe, event: EventPayload, msg_id: str | None = None) -> int:
    """Publish `event` as its service would and wait until tickets has handled it; the
    stream sequence."""
    ack = await probe.publish_and_wait(event, msg_id)
    return int(ack.seq)


async def reserve(probe: Probe, ticket_id: str, order_id: str | None = None) -> str:
    """Have an order take the ticket; the order id."""
    event = order_created(ticket_id, order_id)
    await deliver(probe, event)
    return event.id
