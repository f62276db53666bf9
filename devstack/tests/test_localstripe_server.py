"""The localstripe that make dev and the tests run still lists what localstripe lists,
in its order, with its listings reading only the objects of their type."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ticketing_testing.stripe import LocalStripe


@pytest.fixture(scope="module")
def server() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def stripe(server: LocalStripe) -> AsyncIterator[httpx.AsyncClient]:
    await server.clear()
    async with httpx.AsyncClient(base_url=server.url, auth=(server.key, "")) as http:
        yield http


async def pay(stripe: httpx.AsyncClient, amount: int) -> dict[str, Any]:
    response = await stripe.post(
        "/v1/payment_intents",
        data={
            "amount": str(amount),
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "payment_method_types[]": "card",
            "confirm": "true",
        },
    )
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    return intent


async def listed(stripe: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await stripe.get(path, params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_listings_hold_every_object_of_their_type_in_creation_order(
    stripe: httpx.AsyncClient,
) -> None:
    intents = [await pay(stripe, 100 * (n + 1)) for n in range(5)]

    charges = await listed(stripe, "/v1/charges")
    listed_intents = await listed(stripe, "/v1/payment_intents")

    assert [c["amount"] for c in charges] == [100, 200, 300, 400, 500]
    assert {i["id"] for i in listed_intents} == {i["id"] for i in intents}
    assert all(c["object"] == "charge" for c in charges)


async def test_a_charge_shows_only_its_own_refunds(stripe: httpx.AsyncClient) -> None:
    kept, refunded = await pay(stripe, 700), await pay(stripe, 900)
    response = await stripe.post("/v1/refunds", data={"payment_intent": refunded["id"]})
    assert response.status_code == 200, response.text

    charges = {c["payment_intent"]: c for c in await listed(stripe, "/v1/charges")}

    assert charges[refunded["id"]]["refunded"] is True
    assert charges[refunded["id"]]["amount_refunded"] == 900
    assert charges[kept["id"]]["refunded"] is False
    assert [r["amount"] for r in await listed(stripe, "/v1/refunds")] == [900]
    assert await listed(stripe, "/v1/refunds", payment_intent=kept["id"]) == []


async def test_clearing_the_data_empties_every_listing(
    server: LocalStripe, stripe: httpx.AsyncClient
) -> None:
    await pay(stripe, 100)

    await server.clear()

    assert await listed(stripe, "/v1/charges") == []
    assert await listed(stripe, "/v1/payment_intents") == []
    await pay(stripe, 300)
    assert [c["amount"] for c in await listed(stripe, "/v1/charges")] == [300]
