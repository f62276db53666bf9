from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_testing import TEST_JWT_KEY
from ticketing_testing.services import running_client


@pytest.fixture
def settings() -> Settings:
    # OWASP's minimum argon2id cost keeps the suite fast; production uses the defaults.
    return Settings(
        JWT_KEY=TEST_JWT_KEY,
        MONGO_URI="memory://",
        COOKIE_SECURE=True,
        ARGON2_TIME_COST=2,
        ARGON2_MEMORY_KIB=19456,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    # https: the session cookie is Secure (COOKIE_SECURE).
    async with running_client(create_app(settings), base_url="https://test") as http:
        yield http
