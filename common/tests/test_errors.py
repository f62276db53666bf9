"""The one error shape on an app built like the services."""

from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel

from ticketing_common.app import new_app
from ticketing_common.auth import RequireUser, SessionCodec
from ticketing_common.errors import ConflictError
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.money import Price
from ticketing_testing import TEST_JWT_KEY, cookie_for


class Body(BaseModel):
    title: str
    price: Price


def make_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield {}

    async def ready(request) -> dict[str, bool]:
        return {"always": True}

    app = new_app(
        title="t", lifespan=lifespan, sessions=SessionCodec(TEST_JWT_KEY, False), ready=ready
    )
    router = APIRouter(prefix="/api/things", route_class=ServiceRoute)

    @router.post("", status_code=201)
    async def create_thing(body: Body, user: RequireUser) -> dict[str, str]:
        return {"title": body.title, "price": str(body.price)}

    @router.put("/{thing_id}")
    async def update_thing(thing_id: str, user: RequireUser) -> dict[str, str]:
        raise ConflictError()

    @router.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("bug")

    app.include_router(router)
    return app


def client(cookies: dict[str, str] | None = None) -> AsyncClient:
    transport = ASGITransport(make_app(), raise_app_exceptions=False)
    return AsyncClient(transport=transport, base_url="http://test", cookies=cookies)


async def test_signed_out_gets_401_before_the_body_is_validated():
    async with client() as http:
        for content in (b"{not json", b'{"price": "abc"}', b"[]"):
            response = await http.post(
                "/api/things", content=content, headers={"content-type": "application/json"}
            )
            assert response.status_code == 401
            assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_signed_in_gets_field_errors_never_422():
    async with client(cookie_for()) as http:
        response = await http.post("/api/things", json={"title": 5, "price": 1.001})
        assert response.status_code == 400
        assert response.json() == {
            "errors": [
                {"message": "Input should be a valid string", "field": "title"},
                {"message": "Price must have at most 2 decimals", "field": "price"},
            ]
        }
        ok = await http.post("/api/things/", json={"title": "a", "price": "10.5"})
        assert (ok.status_code, ok.json()) == (201, {"title": "a", "price": "10.50"})


async def test_conflict_is_409_and_unexpected_is_500_without_detail():
    async with client(cookie_for()) as http:
        conflict = await http.put("/api/things/1", json={})
        assert conflict.status_code == 409
        assert list(conflict.json()) == ["errors"]
        boom = await http.get("/api/things/boom")
        assert boom.status_code == 500
        assert boom.json() == {"errors": [{"message": "Something went wrong"}]}


async def test_unknown_route_404_and_wrong_method_405():
    async with client() as http:
        assert (await http.get("/api/nothing")).json() == {"errors": [{"message": "Not Found"}]}
        wrong = await http.delete("/api/things")
        assert wrong.status_code == 405
        assert wrong.json() == {"errors": [{"message": "Method not allowed"}]}


async def test_lone_surrogate_is_400_with_its_field_before_the_route_runs():
    async with client(cookie_for()) as http:
        for body, field in [
            (b'{"title": "\\ud800", "price": 1}', "title"),
            (b'{"title": "x\\udfff", "price": 1}', "title"),
            (b'{"title": "a", "price": 1, "tags": ["ok", {"x": "\\udc00"}]}', "tags.1.x"),
        ]:
            response = await http.post(
                "/api/things", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400
            assert response.json() == {
                "errors": [{"message": "Must be valid text", "field": field}]
            }


async def test_a_whole_surrogate_pair_and_an_escaped_backslash_pass():
    async with client(cookie_for()) as http:
        emoji = await http.post(
            "/api/things",
            content=b'{"title": "\\ud83d\\ude00", "price": 1}',
            headers={"content-type": "application/json"},
        )
        assert (emoji.status_code, emoji.json()["title"]) == (201, "\U0001f600")
        literal = await http.post(
            "/api/things",
            content=b'{"title": "\\\\ud800", "price": 1}',
            headers={"content-type": "application/json"},
        )
        assert (literal.status_code, literal.json()["title"]) == (201, "\\ud800")
