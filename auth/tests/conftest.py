from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from httpx import AsyncClient

from auth.app import create_app
from auth.config import Settings
from ticketing_testing import TEST_JWT_KEY
from ticketing_testing.services import running_client

# The limits' database on the session's Redis (expiration's tests use database 0).
LIMITS_DB = 1


@pytest.fixture
def limits_redis_url(redis_url: str) -> str:
    """Database LIMITS_DB of the session's Redis, emptied: each test starts with no counts."""
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{LIMITS_DB}"))
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def settings(limits_redis_url: str) -> Settings:
    # OWASP's minimum argon2id cost keeps the suite fast; production uses the defaults.
    return Settings(
        JWT_KEY=TEST_JWT_KEY,
        MONGO_URI="memory://",
        REDIS_URL=limits_redis_url,
        COOKIE_SECURE=True,
        ARGON2_TIME_COST=2,
        ARGON2_MEMORY_KIB=19456,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    # https: the session cookie is Secure (COOKIE_SECURE).
    async with running_client(create_app(settings), base_url="https://test") as http:
        yield http
