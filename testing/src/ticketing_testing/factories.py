"""Helpers of the orders tests: replicas on one database, requests, events."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from ticketing_common.events import (
    ExpirationCompleteEvent,
    PaymentCreatedEvent,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.mongo import Mongo
from ticketing_common.testing import random_id
from ticketing_common.testing.database import connect_yielding
from ticketing_common.testing.http import signed_in

ORDERS = "/api/orders"


# Replicas on one database ---------------------------------------------------------


class SecondReplicaMongo(Mongo):
    """Another process's view of a database someone else opened and will close."""

    async def ping(self) -> bool:
        await self.db.list_collection_names()
        return True

    async def close(self) -> None:
        return None


class SharedDatabase:
    """One yielding in-memory database for several orders apps, like replicas of the
    service on one MongoDB: pass `connect` to each one's `create_app`. The first app opens
    it and creates the durable consumers afresh; the others join them as further members
    of each queue group (and leave closing the database to the first)."""

    def __init__(self) -> None:
        self._first: Mongo | None = None

    async def connect(self, uri: str, default_db: str) -> Mongo:
        if self._first is None:
            self._first = await connect_yielding(uri, default_db)
            return self._first
        return SecondReplicaMongo(self._first.client, self._first.db, in_memory=False)


# HTTP helpers -----------------------------------------------------------------------


async def place_order(client: AsyncClient, ticket_id: str, user_id: str) -> dict[str, Any]:
    response = await client.post(ORDERS, json={"ticketId": ticket_id}, headers=signed_in(user_id))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def show_order(client: AsyncClient, order_id: str, user_id: str) -> dict[str, Any]:
    response = await client.get(f"{ORDERS}/{order_id}", headers=signed_in(user_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Events -------------------------------------------------------------------------------


def ticket_created(
    ticket_id: str | None = None, title: str = "concert", price: Any = "20", version: int = 0
) -> TicketCreatedEvent:
    return TicketCreatedEvent.model_validate(
        {
            "id": ticket_id or random_id(),
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def ticket_updated(
    ticket_id: str, version: int, title: str = "concert", price: Any = "20"
) -> TicketUpdatedEvent:
    return TicketUpdatedEvent.model_validate(
        {
            "id": ticket_id,
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def expiration_complete(order_id: str) -> ExpirationCompleteEvent:
    return ExpirationCompleteEvent.model_validate({"orderId": order_id})


def payment_created(order_id: str, payment_id: str | None = None) -> PaymentCreatedEvent:
    return PaymentCreatedEvent.model_validate(
        {"id": payment_id or random_id(), "orderId": order_id, "stripeId": "pi_test_123"}
    )
