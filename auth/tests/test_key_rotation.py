"""Rotating `JWT_KEY` signs nobody out: with `JWT_KEY_PREVIOUS` set, a session signed with
the previous key is still one in every service, while new ones are signed with the new key
only (docs/SPEC.md §2)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_common.auth import SessionCodec
from ticketing_testing import TEST_JWT_KEY, cookie_for, random_id
from ticketing_testing.services import running_client, service_settings

OLD = TEST_JWT_KEY
NEW = "rotated-jwt-key-fedcba9876543210fedcba9876543210"
STRANGER = "someone-elses-jwt-key-0123456789abcdef01234567"
CURRENT = "/api/users/currentuser"


def rotated(settings: Settings, previous: str | None = OLD) -> Settings:
    return settings.model_copy(update={"JWT_KEY": NEW, "JWT_KEY_PREVIOUS": previous})


async def current_user(http: AsyncClient, cookies: dict[str, str]) -> Any:
    http.cookies.clear()
    response = await http.get(CURRENT, cookies=cookies)
    assert response.status_code == 200
    return response.json()["currentUser"]


def issued_token(response: Any) -> str:
    cookie = response.cookies["session"]
    token: str = json.loads(base64.b64decode(cookie))["jwt"]
    return token


class TestAuth:
    async def test_a_cookie_signed_with_the_previous_key_is_still_a_session(self, settings):
        async with running_client(create_app(rotated(settings)), "https://test") as http:
            signed_up = await http.post(
                "/api/users/signup", json={"email": "me@test.com", "password": "password"}
            )
            user_id = signed_up.json()["id"]

            before_rotation = cookie_for(user_id, "me@test.com", key=OLD)
            user = await current_user(http, before_rotation)

        assert user is not None and user["id"] == user_id
        # What auth issues now is signed with the new key alone.
        token = issued_token(signed_up)
        assert jwt.decode(token, NEW, algorithms=["HS256"])["id"] == user_id
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, OLD, algorithms=["HS256"])

    async def test_a_cookie_signed_with_neither_key_is_signed_out(self, settings):
        async with running_client(create_app(rotated(settings)), "https://test") as http:
            assert await current_user(http, cookie_for(random_id(), key=STRANGER)) is None

    async def test_once_the_previous_key_is_dropped_its_cookies_are_signed_out(self, settings):
        app = create_app(rotated(settings, previous=None))
        async with running_client(app, "https://test") as http:
            signed_up = await http.post(
                "/api/users/signup", json={"email": "me@test.com", "password": "password"}
            )
            user_id = signed_up.json()["id"]

            assert await current_user(http, cookie_for(user_id, "me@test.com", key=OLD)) is None
            assert await current_user(http, dict(signed_up.cookies)) is not None

    async def test_an_expired_cookie_of_the_previous_key_is_signed_out(self, settings):
        codec = SessionCodec(jwt_key=OLD)
        long_ago = int(time.time()) - codec.ttl_seconds - 60
        expired = {"session": codec.cookie_value(codec.token_for(random_id(), "a@b.c", long_ago))}
        async with running_client(create_app(rotated(settings)), "https://test") as http:
            assert await current_user(http, expired) is None


class TestSettings:
    def test_a_weak_previous_key_refuses_to_start_with_a_real_database(self):
        with pytest.raises(ValueError, match="JWT_KEY_PREVIOUS: must be at least 32 bytes"):
            Settings(
                JWT_KEY=NEW,
                JWT_KEY_PREVIOUS="short",
                MONGO_URI="mongodb://auth-mongo-srv:27017/auth",
                REDIS_URL="redis://r:6379/1",
            )

    def test_an_empty_previous_key_is_none(self):
        settings = Settings(
            JWT_KEY=NEW, JWT_KEY_PREVIOUS="", MONGO_URI="memory://", REDIS_URL="redis://r"
        )
        assert settings.JWT_KEY_PREVIOUS is None


def session_reader(service: str) -> tuple[FastAPI, str]:
    """The service's app with rotated keys (not started: the session check of a write
    runs before anything the lifespan opens), and a route of it that requires a user."""
    import importlib

    module = importlib.import_module(f"{service}.app")
    config = importlib.import_module(f"{service}.config")
    extra = {"STRIPE_KEY": "sk_test_rotation"} if service == "payments" else {}
    settings = service_settings(
        config.Settings, "nats://127.0.0.1:1", JWT_KEY=NEW, JWT_KEY_PREVIOUS=OLD, **extra
    )
    return module.create_app(settings), f"/api/{service}"


@pytest.mark.parametrize("service", ["tickets", "orders", "payments"])
async def test_every_service_takes_a_session_of_the_previous_key(service: str):
    app, protected = session_reader(service)
    async with AsyncClient(transport=ASGITransport(app), base_url="http://test") as http:

        async def write(key: str) -> int:
            # Not JSON: a signed-in caller gets past the session check to the 415.
            cookies = cookie_for(random_id(), key=key)
            http.cookies.clear()
            response = await http.post(protected, content="x", cookies=cookies)
            return response.status_code

        assert await write(OLD) == 415
        assert await write(NEW) == 415
        assert await write(STRANGER) == 401
