from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_common.testing import TEST_JWT_KEY


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
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="https://test") as http,
    ):
        yield http
