"""A sign-in for an unknown email costs a password hash like one for a known email, so the
time of a failure does not tell whether the account exists (docs/SPEC.md §2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_testing.services import running_client

SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"
BUSY = {"errors": [{"message": "Server busy; please retry shortly"}]}
INVALID = {"errors": [{"message": "Invalid credentials"}]}


def sign_in(http: AsyncClient, email: str, password: str = "wrong"):
    return http.post(SIGNIN, json={"email": email, "password": password})


@pytest.fixture
async def one_slow_hash(settings: Settings) -> AsyncIterator[AsyncClient]:
    """One hash at a time, none waiting, each slow (about 0.5 s): while a sign-up hashes,
    any request that needs the hasher is 503 at once."""
    narrow = settings.model_copy(
        update={
            "ARGON2_MAX_CONCURRENT": 1,
            "ARGON2_MAX_QUEUED": 0,
            "ARGON2_TIME_COST": 8,
            "ARGON2_MEMORY_KIB": 65536,
            "SIGNIN_FAILURES_PER_EMAIL": 1,
        }
    )
    async with running_client(create_app(narrow), base_url="https://test") as http:
        yield http


async def test_an_unknown_email_waits_for_the_hasher_like_a_known_one(one_slow_hash):
    http = one_slow_hash
    known = {"email": "known@test.com", "password": "password"}
    assert (await http.post(SIGNUP, json=known)).status_code == 201
    http.cookies.clear()

    holder = asyncio.create_task(http.post(SIGNUP, json={**known, "email": "holder@test.com"}))
    await asyncio.sleep(0.1)  # the sign-up is hashing now (a hash takes about half a second)
    unknown = await sign_in(http, "nobody@test.com")
    wrong = await sign_in(http, "known@test.com")
    assert not holder.done(), "the hash ended before the sign-ins: make it slower"
    assert (await holder).status_code == 201

    # Both needed the hasher (an unknown email verifies a dummy hash), so both were refused.
    assert (unknown.status_code, unknown.json()) == (503, BUSY)
    assert (wrong.status_code, wrong.json()) == (503, BUSY)
    # A busy refusal is not the client's failure: each email still has its one failure left.
    assert (await sign_in(http, "nobody@test.com")).json() == INVALID
    assert (await sign_in(http, "known@test.com")).json() == INVALID
