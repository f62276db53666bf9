"""What every service checks of a POST/PUT/PATCH before its route reads the body:
routing and sign-in first, then JSON only, bounded size and depth, valid text."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI, Request
from httpx import ASGITransport, AsyncClient

from ticketing_common.app import new_app
from ticketing_common.auth import RequireUser, SessionCodec
from ticketing_common.http.body_checks import MAX_JSON_DEPTH
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.schemas import RequestBody
from ticketing_testing import TEST_JWT_KEY, cookie_for

LIMIT = 2000
JSON = {"content-type": "application/json"}
SURROGATE = b'{"title": "\\ud800"}'


class Body(RequestBody):
    title: str


def make_app(max_body_bytes: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        yield {}

    app = new_app(
        title="t",
        lifespan=lifespan,
        sessions=SessionCodec(TEST_JWT_KEY, False),
        max_body_bytes=max_body_bytes,
    )
    router = APIRouter(prefix="/api/things", route_class=ServiceRoute)

    @router.post("", status_code=201)
    async def create(body: Body, user: RequireUser) -> dict[str, str]:
        return {"title": body.title}

    @router.post("/open", status_code=201)
    async def create_open(body: Body) -> dict[str, str]:
        return {"title": body.title}

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        # Like a webhook verifying a signature over the exact bytes.
        return {"length": len(await request.body())}

    @router.delete("/{thing_id}", status_code=204)
    async def delete(thing_id: str, user: RequireUser) -> None:
        return None

    app.include_router(router)
    return app


@asynccontextmanager
async def serving(max_body_bytes: int) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(make_app(max_body_bytes), raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[AsyncClient]:
    async with serving(LIMIT) as client:
        yield client


@pytest.fixture
async def roomy() -> AsyncIterator[AsyncClient]:
    """Room for deep bodies: the default limit."""
    async with serving(1024 * 1024) as client:
        yield client


def signed_in(**headers: str) -> dict[str, str]:
    cookie = "; ".join(f"{name}={value}" for name, value in cookie_for().items())
    return {"cookie": cookie, **headers}


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"title": "x", "n": ' + b"[" * depth + inner + b"]" * depth + b"}"


class TestRoutingAndSignInComeFirst:
    async def test_signed_out_is_401_even_for_a_body_with_a_lone_surrogate(self, http):
        response = await http.post("/api/things", content=SURROGATE, headers=JSON)

        assert response.status_code == 401
        assert response.json() == {"errors": [{"message": "Not authorized"}]}

    async def test_signed_out_is_401_before_the_content_type_and_size(self, http):
        for headers, content in [
            ({"content-type": "text/plain"}, b"{}"),
            ({}, b""),
            (JSON, b"x" * (LIMIT + 1)),
        ]:
            response = await http.post("/api/things", content=content, headers=headers)
            assert response.status_code == 401, headers

    async def test_unknown_path_is_404_and_wrong_method_405_whatever_the_body(self, http):
        unknown = await http.post("/api/nothing", content=SURROGATE, headers=signed_in(**JSON))
        wrong = await http.put("/api/things", content=SURROGATE, headers=signed_in(**JSON))
        big = await http.patch("/api/things", content=b"x" * (LIMIT + 1), headers=signed_in())

        assert (unknown.status_code, unknown.json()) == (
            404,
            {"errors": [{"message": "Not Found"}]},
        )
        assert (wrong.status_code, wrong.json()) == (
            405,
            {"errors": [{"message": "Method not allowed"}]},
        )
        assert big.status_code == 405


class TestJsonOnly:
    @pytest.mark.parametrize(
        "headers",
        [{}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}],
        ids=["none", "text-plain", "form"],
    )
    async def test_a_write_that_is_not_declared_json_is_415(self, http, headers):
        # What a no-cors fetch or a form from another origin can send with the cookie.
        response = await http.post(
            "/api/things", content=b'{"title": "forged"}', headers=signed_in(**headers)
        )

        assert response.status_code == 415
        assert response.json() == {"errors": [{"message": "Content-Type must be application/json"}]}

    async def test_json_with_a_charset_is_accepted(self, http):
        response = await http.post(
            "/api/things",
            content=b'{"title": "ok"}',
            headers=signed_in(**{"content-type": "Application/JSON; charset=utf-8"}),
        )

        assert (response.status_code, response.json()) == (201, {"title": "ok"})

    async def test_delete_has_no_body_and_needs_no_content_type(self, http):
        response = await http.delete("/api/things/1", headers=signed_in())

        assert response.status_code == 204


class TestSize:
    async def test_a_body_over_the_limit_is_413_by_its_declared_length(self, http):
        body = b'{"title": "' + b"x" * LIMIT + b'"}'

        response = await http.post("/api/things/open", content=body, headers=JSON)

        assert response.status_code == 413
        assert response.json() == {"errors": [{"message": "Request body is too large"}]}

    async def test_a_streamed_body_is_cut_off_at_the_limit(self, http):
        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the size is counted as the chunks arrive.
            yield b'{"title": "'
            for _ in range(100):
                yield b"x" * 500
            yield b'"}'

        response = await http.post("/api/things/open", content=chunks(), headers=JSON)

        assert response.status_code == 413
        assert response.json() == {"errors": [{"message": "Request body is too large"}]}

    async def test_a_body_at_the_limit_is_read(self, http):
        body = b'{"title": "' + b"x" * (LIMIT - 14) + b'"}'
        assert len(body) == LIMIT - 1

        response = await http.post("/api/things/open", content=body, headers=JSON)

        assert response.status_code == 201


class TestDepth:
    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 100, 100_000])
    async def test_nesting_deeper_than_the_bound_is_400_not_500(self, roomy, depth):
        # The title's object is one level, so this is depth + 1 deep.
        response = await roomy.post("/api/things/open", content=nested(depth), headers=JSON)

        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Request body is nested too deeply"}]}

    async def test_deep_nesting_around_a_lone_surrogate_is_400_not_500(self, roomy):
        response = await roomy.post(
            "/api/things/open", content=nested(5000, b'"\\ud800"'), headers=JSON
        )

        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Request body is nested too deeply"}]}

    async def test_nesting_up_to_the_bound_is_accepted(self, roomy):
        response = await roomy.post(
            "/api/things/open", content=nested(MAX_JSON_DEPTH - 1), headers=JSON
        )

        assert (response.status_code, response.json()) == (201, {"title": "x"})


class TestBodyReachesTheRoute:
    async def test_a_route_reads_the_exact_raw_bytes(self, http):
        body = b'{"id": "evt_1",  "data": {"object": {"x": "\\ud83d\\ude00"}}}\n'

        response = await http.post("/api/things/raw", content=body, headers=JSON)

        assert response.json() == {"length": len(body)}

    async def test_a_lone_surrogate_still_names_its_field(self, http):
        response = await http.post(
            "/api/things/open", content=b'{"title": "x", "tags": ["\\udfff"]}', headers=JSON
        )

        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Must be valid text", "field": "tags.0"}]}
