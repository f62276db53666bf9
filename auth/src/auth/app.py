from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from auth.config import Settings, get_settings
from auth.deps import auth_ready
from auth.limits import Limits, connect_redis
from auth.passwords import Passwords
from auth.repository import Users
from auth.routes import router
from auth.service import Accounts
from ticketing_common.auth import SessionCodec
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import MongoConnector, connect_mongo
from ticketing_common.service import new_app


def create_app(
    settings: Settings | None = None, *, connect: MongoConnector = connect_mongo
) -> FastAPI:
    """The app; `connect` opens its database (a test may pass its own connector)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect(settings.MONGO_URI, "auth")
        users = Users(mongo.db.users)
        await users.create_indexes()
        passwords = Passwords(
            settings.ARGON2_TIME_COST,
            settings.ARGON2_MEMORY_KIB,
            concurrency=settings.ARGON2_MAX_CONCURRENT,
            queue=settings.ARGON2_MAX_QUEUED,
        )
        limits = Limits(await connect_redis(settings.REDIS_URL), settings)
        try:
            accounts = Accounts(users, passwords, limits)
            yield {"mongo": mongo, "limits": limits, "accounts": accounts}
        finally:
            await limits.close()
            passwords.close()
            await mongo.close()

    app = new_app(
        title="Ticketing auth",
        lifespan=lifespan,
        sessions=SessionCodec(
            jwt_key=settings.JWT_KEY,
            previous_jwt_key=settings.JWT_KEY_PREVIOUS,
            cookie_secure=settings.COOKIE_SECURE,
            ttl_seconds=settings.SESSION_TTL_SECONDS,
        ),
        ready=auth_ready,
        max_body_bytes=settings.MAX_BODY_BYTES,
        metrics=Metrics("auth"),
    )
    app.include_router(router)
    return app
