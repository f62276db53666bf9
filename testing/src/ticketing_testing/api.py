"""Requests to the services' routes that a test needs to succeed."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from ticketing_testing.http import signed_in

TICKETS = "/api/tickets"
ORDERS = "/api/orders"
PAYMENTS = "/api/payments"


async def create_ticket(
    client: AsyncClient, user_id: str, title: str = "concert", price: Any = 20
) -> dict[str, Any]:
    """POST a ticket as `user_id`; the created ticket (fails unless 201)."""
    response = await client.post(
        TICKETS, json={"title": title, "price": price}, headers=signed_in(user_id)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def place_order(client: AsyncClient, ticket_id: str, user_id: str) -> dict[str, Any]:
    """POST an order for `ticket_id` as `user_id`; the order (fails unless 201)."""
    response = await client.post(ORDERS, json={"ticketId": ticket_id}, headers=signed_in(user_id))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def show_order(client: AsyncClient, order_id: str, user_id: str) -> dict[str, Any]:
    """GET an order as `user_id`; the order (fails unless 200)."""
    response = await client.get(f"{ORDERS}/{order_id}", headers=signed_in(user_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
