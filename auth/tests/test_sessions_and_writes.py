"""Writes must be JSON (a cross-site form or no-cors fetch cannot ride the cookie), bodies
are bounded, and signing out revokes the session for good."""

import base64
import json

import jwt
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_testing import TEST_JWT_KEY

SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"
SIGNOUT = "/api/users/signout"
CURRENT = "/api/users/currentuser"
CREDENTIALS = {"email": "me@test.com", "password": "password"}


async def current_with(client: AsyncClient, session: str):
    client.cookies.clear()
    client.cookies.set("session", session)
    return (await client.get(CURRENT)).json()["currentUser"]


class TestJsonOnly:
    async def test_signup_posted_as_text_is_415_and_creates_nothing(self, client):
        # What a no-cors fetch from a sibling origin sends.
        forged = await client.post(
            SIGNUP, content=json.dumps(CREDENTIALS), headers={"content-type": "text/plain"}
        )

        assert forged.status_code == 415
        assert forged.json() == {"errors": [{"message": "Content-Type must be application/json"}]}
        assert "set-cookie" not in forged.headers
        assert (await client.post(SIGNUP, json=CREDENTIALS)).status_code == 201

    async def test_signout_without_json_is_415_and_keeps_the_session(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)

        forged = await client.post(SIGNOUT)

        assert forged.status_code == 415
        assert "set-cookie" not in forged.headers
        assert (await client.get(CURRENT)).json()["currentUser"]["email"] == "me@test.com"


class TestSignOutRevokes:
    async def test_a_signed_out_token_is_no_session_even_when_sent_again(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)
        kept = client.cookies["session"]

        assert (await client.post(SIGNOUT, json={})).status_code == 200

        assert await current_with(client, kept) is None

    async def test_signing_in_again_gives_a_session_the_old_token_does_not_revive(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)
        old = client.cookies["session"]
        await client.post(SIGNOUT, json={})

        await client.post(SIGNIN, json=CREDENTIALS)
        new = client.cookies["session"]

        assert (await current_with(client, new))["email"] == "me@test.com"
        assert await current_with(client, old) is None

    async def test_signing_out_ends_the_users_other_sessions_too(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)
        first = client.cookies["session"]
        client.cookies.clear()
        await client.post(SIGNIN, json=CREDENTIALS)
        second = client.cookies["session"]

        client.cookies.set("session", second)
        await client.post(SIGNOUT, json={})

        assert await current_with(client, first) is None
        assert await current_with(client, second) is None

    async def test_a_revoked_token_cannot_sign_out_the_next_session(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)
        old = client.cookies["session"]
        await client.post(SIGNOUT, json={})
        await client.post(SIGNIN, json=CREDENTIALS)
        current = client.cookies["session"]

        client.cookies.clear()
        client.cookies.set("session", old)
        await client.post(SIGNOUT, json={})

        assert (await current_with(client, current))["email"] == "me@test.com"

    async def test_the_token_carries_its_session_version(self, client):
        await client.post(SIGNUP, json=CREDENTIALS)
        envelope = json.loads(base64.b64decode(client.cookies["session"]))

        claims = jwt.decode(envelope["jwt"], TEST_JWT_KEY, algorithms=["HS256"])

        assert claims["ver"] == 0


async def test_max_body_bytes_bounds_what_auth_reads(settings: Settings):
    app = create_app(settings.model_copy(update={"MAX_BODY_BYTES": 200}))
    async with (
        LifespanManager(app) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="https://test") as http,
    ):
        padded = {**CREDENTIALS, "padding": "x" * 200}

        response = await http.post(SIGNUP, json=padded)

        assert response.status_code == 413
        assert response.json() == {"errors": [{"message": "Request body is too large"}]}
        assert (await http.post(SIGNUP, json=CREDENTIALS)).status_code == 201
