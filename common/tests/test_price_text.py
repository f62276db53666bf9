"""A price given as a string is written as JSON writes numbers: ASCII digits, no `_`."""

from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient

from ticketing_common.app import new_app
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.money import Price
from ticketing_common.schemas import RequestBody


class Priced(RequestBody):
    price: Price


def make_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield {}

    app = new_app(title="t", lifespan=lifespan, sessions=None)
    router = APIRouter(prefix="/api/prices", route_class=ServiceRoute)

    @router.post("", status_code=201)
    async def create(body: Priced) -> dict[str, str]:
        return {"price": str(body.price)}

    app.include_router(router)
    return app


async def post_price(price: object):
    async with AsyncClient(transport=ASGITransport(make_app()), base_url="http://test") as http:
        return await http.post("/api/prices", json={"price": price})


@pytest.mark.parametrize(
    "price",
    [
        "1_000.00",
        "1_0",
        "\u0661\u0660",  # Arabic-Indic "10"
        "\uff11\uff10.00",  # full-width "10.00"
        "1\u0660",  # a non-ASCII digit among ASCII ones
        "\u09e7.50",  # Bengali "1.50"
    ],
    ids=["underscore-grouping", "underscore", "arabic-indic", "fullwidth", "mixed", "bengali"],
)
async def test_price_text_with_underscores_or_non_ascii_digits_is_400_field_price(price):
    response = await post_price(price)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Price must be a number", "field": "price"}]}


@pytest.mark.parametrize(
    ("price", "stored"), [("1000.00", "1000.00"), (" 10.5 ", "10.50"), ("1e2", "100.00")]
)
async def test_plain_numeric_text_is_still_a_price(price, stored):
    response = await post_price(price)

    assert (response.status_code, response.json()) == (201, {"price": stored})
