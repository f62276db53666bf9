"""argon2id hashing is bounded: a few run, a few wait, the rest are told to retry (503)
rather than piling up 64 MiB hashes until the pod runs out of memory."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from auth.app import create_app
from auth.config import Settings

SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"
BUSY = {"errors": [{"message": "Server busy; please retry shortly"}]}


@pytest.fixture
async def narrow(settings: Settings) -> AsyncIterator[AsyncClient]:
    """One hash at a time, one waiting, each slow enough (production cost) to overlap."""
    app = create_app(
        settings.model_copy(
            update={
                "ARGON2_MAX_CONCURRENT": 1,
                "ARGON2_MAX_QUEUED": 1,
                "ARGON2_TIME_COST": 3,
                "ARGON2_MEMORY_KIB": 65536,
            }
        )
    )
    async with (
        LifespanManager(app) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="https://test") as http,
    ):
        yield http


def sign_up(http: AsyncClient, email: str):
    return http.post(SIGNUP, json={"email": email, "password": "password"})


async def test_signups_beyond_the_running_and_waiting_hashes_are_503_and_create_nothing(narrow):
    emails = [f"user{n}@test.com" for n in range(6)]

    responses = await asyncio.gather(*(sign_up(narrow, email) for email in emails))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 503}, statuses
    assert statuses.count(201) >= 2, statuses  # the running one and the waiting one
    assert statuses.count(503) >= 1, statuses
    for email, response in zip(emails, responses, strict=True):
        if response.status_code == 503:
            assert response.json() == BUSY
            assert response.headers["retry-after"] == "1"
            assert "set-cookie" not in response.headers
            # Nothing was written: the address is still free once the load is gone.
            assert (await sign_up(narrow, email)).status_code == 201


async def test_sign_ins_share_the_bound_and_succeed_once_retried(narrow):
    assert (await sign_up(narrow, "me@test.com")).status_code == 201
    narrow.cookies.clear()
    credentials = {"email": "me@test.com", "password": "password"}

    responses = await asyncio.gather(*(narrow.post(SIGNIN, json=credentials) for _ in range(5)))

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    assert all(r.json() == BUSY for r in responses if r.status_code == 503)
    assert (await narrow.post(SIGNIN, json=credentials)).status_code == 200


def test_hashing_bounds_are_positive_settings():
    with pytest.raises(ValueError):
        Settings(
            JWT_KEY="k" * 32, MONGO_URI="memory://", REDIS_URL="redis://r", ARGON2_MAX_CONCURRENT=0
        )
    with pytest.raises(ValueError):
        Settings(
            JWT_KEY="k" * 32, MONGO_URI="memory://", REDIS_URL="redis://r", ARGON2_MAX_QUEUED=-1
        )
