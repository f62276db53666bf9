import asyncio
import base64
import json
import time

import jwt
import pytest
from httpx import AsyncClient

from ticketing_testing import TEST_JWT_KEY, cookie_for

SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"
SIGNOUT = "/api/users/signout"
CURRENT = "/api/users/currentuser"


async def sign_up(client: AsyncClient, email: str = "test@test.com", password: str = "password"):
    return await client.post(SIGNUP, json={"email": email, "password": password})


def fields(response) -> list[str]:
    return [entry.get("field", "") for entry in response.json()["errors"]]


def session_cookie_header(response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(headers) == 1
    return str(headers[0])


def cookie_with_token(token: str) -> dict[str, str]:
    return {"session": base64.b64encode(json.dumps({"jwt": token}).encode()).decode()}


class TestSignUp:
    async def test_valid_signup_is_201_with_user_and_cookie(self, client):
        response = await sign_up(client)
        assert response.status_code == 201
        body = response.json()
        assert body["email"] == "test@test.com"
        assert len(body["id"]) == 24
        header = session_cookie_header(response).lower()
        for flag in ("httponly", "secure", "samesite=lax", "path=/"):
            assert flag in header

    async def test_email_is_trimmed_and_lower_cased(self, client):
        response = await sign_up(client, email="  Someone@Example.COM ")
        assert response.status_code == 201
        assert response.json()["email"] == "someone@example.com"
        again = await sign_up(client, email="someone@example.com")
        assert again.status_code == 400
        assert again.json() == {"errors": [{"message": "Email in use"}]}

    async def test_invalid_email_is_400_with_field(self, client):
        response = await sign_up(client, email="not-an-email")
        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Email must be valid", "field": "email"}]}

    @pytest.mark.parametrize("password", ["abc", "a" * 21, "   ab   "])
    async def test_password_out_of_4_to_20_is_400(self, client, password):
        response = await sign_up(client, password=password)
        assert response.status_code == 400
        assert fields(response) == ["password"]

    async def test_20_character_password_is_accepted(self, client):
        assert (await sign_up(client, password="a" * 20)).status_code == 201

    async def test_missing_fields_are_400_one_entry_each(self, client):
        response = await client.post(SIGNUP, json={})
        assert response.status_code == 400
        assert sorted(fields(response)) == ["email", "password"]

    async def test_wrong_types_are_400(self, client):
        response = await client.post(SIGNUP, json={"email": 5, "password": ["x"]})
        assert response.status_code == 400
        assert sorted(fields(response)) == ["email", "password"]

    async def test_malformed_json_is_400_without_field(self, client):
        response = await client.post(
            SIGNUP, content=b'{"email": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Request body is not valid JSON"}]}

    @pytest.mark.parametrize("body", [[], "text", 3, None])
    async def test_non_object_body_is_400(self, client, body):
        # The header too: json=None sends no body and so no Content-Type (415).
        response = await client.post(
            SIGNUP, json=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Request body must be a JSON object"}]}

    async def test_duplicate_email_is_400_email_in_use(self, client):
        await sign_up(client)
        response = await sign_up(client)
        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": "Email in use"}]}

    async def test_concurrent_duplicate_signups_create_one_user(self, client):
        responses = await asyncio.gather(*(sign_up(client) for _ in range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [400] * 7
        losers = [r.json() for r in responses if r.status_code == 400]
        assert all(body == {"errors": [{"message": "Email in use"}]} for body in losers)

    async def test_password_with_half_a_surrogate_pair_is_400_not_500(self, client):
        response = await client.post(
            SIGNUP,
            content=b'{"email": "a@b.com", "password": "\\ud800abcd"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json() == {
            "errors": [{"message": "Must be valid text", "field": "password"}]
        }
        assert (await sign_up(client, email="a@b.com")).status_code == 201

    async def test_trailing_slash_answers_without_redirect(self, client):
        response = await client.post(SIGNUP + "/", json={"email": "a@b.com", "password": "pass"})
        assert response.status_code == 201


class TestSignIn:
    async def test_valid_credentials_are_200_with_cookie(self, client):
        await sign_up(client)
        client.cookies.clear()
        response = await client.post(
            SIGNIN, json={"email": "TEST@test.com ", "password": "password"}
        )
        assert response.status_code == 200
        assert response.json()["email"] == "test@test.com"
        session_cookie_header(response)
        current = await client.get(CURRENT)
        assert current.json()["currentUser"]["email"] == "test@test.com"

    async def test_wrong_password_and_unknown_email_give_the_same_answer(self, client):
        await sign_up(client)
        wrong = await client.post(SIGNIN, json={"email": "test@test.com", "password": "nope"})
        unknown = await client.post(SIGNIN, json={"email": "who@test.com", "password": "password"})
        assert wrong.status_code == unknown.status_code == 400
        assert wrong.json() == unknown.json() == {"errors": [{"message": "Invalid credentials"}]}
        assert "set-cookie" not in wrong.headers

    async def test_empty_password_is_400_with_field(self, client):
        response = await client.post(SIGNIN, json={"email": "test@test.com", "password": "  "})
        assert response.status_code == 400
        assert fields(response) == ["password"]

    async def test_invalid_email_is_400_with_field(self, client):
        response = await client.post(SIGNIN, json={"email": "x", "password": "password"})
        assert response.status_code == 400
        assert fields(response) == ["email"]


class TestSignOut:
    async def test_signout_clears_the_cookie(self, client):
        await sign_up(client)
        response = await client.post(SIGNOUT, json={})
        assert response.status_code == 200
        assert response.json() == {}
        header = session_cookie_header(response).lower()
        assert "max-age=0" in header or "expires=thu, 01 jan 1970" in header
        assert (await client.get(CURRENT)).json() == {"currentUser": None}


class TestCurrentUser:
    async def test_signed_in_user_is_returned_with_iat_and_exp(self, client):
        created = (await sign_up(client)).json()
        body = (await client.get(CURRENT)).json()["currentUser"]
        assert body["id"] == created["id"]
        assert body["email"] == "test@test.com"
        assert body["exp"] > body["iat"] >= int(time.time()) - 5

    async def test_signed_out_is_null(self, client):
        response = await client.get(CURRENT)
        assert response.status_code == 200
        assert response.json() == {"currentUser": None}

    async def test_cookie_made_for_a_user_id_is_accepted(self, client):
        created = (await sign_up(client, email="x@y.com")).json()
        client.cookies.clear()
        client.cookies.update(cookie_for(created["id"], "x@y.com"))
        assert (await client.get(CURRENT)).json()["currentUser"]["id"] == created["id"]

    @pytest.mark.parametrize(
        "cookie",
        [
            cookie_with_token(
                jwt.encode(
                    {"id": "a" * 24, "email": "x@y.com", "iat": 0, "exp": 2**40},
                    key=None,
                    algorithm="none",
                )
            ),
            cookie_with_token(
                jwt.encode(
                    {"id": "a" * 24, "email": "x@y.com", "iat": 0, "exp": 2**40},
                    "another-key-0123456789abcdef0123456789",
                    algorithm="HS256",
                )
            ),
            cookie_with_token(
                jwt.encode(
                    {"id": "a" * 24, "email": "x@y.com", "iat": 0, "exp": int(time.time()) - 10},
                    TEST_JWT_KEY,
                    algorithm="HS256",
                )
            ),
            cookie_with_token(
                jwt.encode({"id": "a" * 24, "email": "x@y.com", "iat": 0}, TEST_JWT_KEY)
            ),
            cookie_with_token(
                jwt.encode(
                    {"id": "not-an-object-id", "email": "x@y.com", "iat": 0, "exp": 2**40},
                    TEST_JWT_KEY,
                    algorithm="HS256",
                )
            ),
            {"session": "garbage!!"},
            {"session": base64.b64encode(b"[1, 2]").decode()},
            {"session": base64.b64encode(b'{"jwt": 5}').decode()},
        ],
        ids=[
            "alg-none",
            "wrong-key",
            "expired",
            "no-exp",
            "id-not-object-id",
            "garbage",
            "not-object",
            "jwt-not-str",
        ],
    )
    async def test_forged_or_broken_cookie_is_signed_out(self, client, cookie):
        client.cookies.update(cookie)
        response = await client.get(CURRENT)
        assert response.status_code == 200
        assert response.json() == {"currentUser": None}


class TestErrorsAndHealth:
    async def test_unknown_route_is_404_in_the_error_shape(self, client):
        response = await client.get("/api/users/nope")
        assert response.status_code == 404
        assert response.json() == {"errors": [{"message": "Not Found"}]}

    async def test_wrong_method_is_405(self, client):
        response = await client.get(SIGNUP)
        assert response.status_code == 405
        assert response.json() == {"errors": [{"message": "Method not allowed"}]}

    async def test_health_and_readiness(self, client):
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "limits": True}
