"""Helpers of the orders tests: replicas on one database, requests, events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from httpx import AsyncClient

from ticketing_common.events import (
    ExpirationCompleteEvent,
    PaymentCreatedEvent,
    TicketCreatedEvent,
    TicketUpdatedEvent,
)
from ticketing_common.mongo import Mongo
from ticketing_common.testing import random_id
from ticketing_common.testing.database import connect_yielding, yielding_database
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


@contextmanager
def shared_database(*app_modules: str) -> Iterator[None]:
    """Orders apps created inside share one yielding in-memory database, like replicas of
    the service on one MongoDB: the first creates the durable consumers afresh, the others
    join them as further members of each queue group.

    Other apps named in `app_modules` get a yielding database of their own.
    """
    first: list[Mongo] = []

    async def connect_orders(uri: str, default_db: str, timeout: float = 30.0) -> Mongo:
        if not first:
            first.append(await connect_yielding(uri, default_db, timeout))
            return first[0]
        return SecondReplicaMongo(first[0].client, first[0].db, in_memory=False)

    with ExitStack() as stack:
        if app_modules:
            stack.enter_context(yielding_database(*app_modules))
        stack.enter_context(mock.patch("orders.app.connect_mongo", connect_orders))
        yield


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
