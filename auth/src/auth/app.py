"""The auth service, declared: its state, the sessions it issues and its app (`create_app`)."""

from auth.config import Settings, get_settings
from auth.deps import State
from auth.limits import Limits, connect_redis
from auth.passwords import Passwords
from auth.repository import Users
from auth.routes import router
from auth.service import Accounts
from ticketing_common.app import Opened, Service, app_factory
from ticketing_common.auth import SessionCodec


async def open_state(opened: Opened[Settings]) -> State:
    settings = opened.settings
    users = Users(opened.db.users)
    await users.create_indexes()
    passwords = Passwords(
        settings.ARGON2_TIME_COST,
        settings.ARGON2_MEMORY_KIB,
        concurrency=settings.ARGON2_MAX_CONCURRENT,
        queue=settings.ARGON2_MAX_QUEUED,
    )
    opened.close_with(passwords.aclose)
    limits = Limits(await connect_redis(settings.REDIS_URL), settings)
    opened.close_with(limits.close)
    return State(**opened.base(), limits=limits, accounts=Accounts(users, passwords, limits))


def issuing_sessions(settings: Settings) -> SessionCodec:
    """Auth is the one service that issues the session cookie, so it sets its lifetime and
    whether it is sent over HTTPS only."""
    return SessionCodec(
        jwt_key=settings.JWT_KEY,
        previous_jwt_key=settings.JWT_KEY_PREVIOUS,
        cookie_secure=settings.COOKIE_SECURE,
        ttl_seconds=settings.SESSION_TTL_SECONDS,
    )


async def limits_ready(state: State) -> bool:
    """Redis holds the abuse limits: no sign-in or sign-up without it."""
    return await state["limits"].ready()


create_app = app_factory(
    Service(
        name="auth",
        title="Ticketing auth",
        router=router,
        state=open_state,
        ready={"limits": limits_ready},
        sessions=issuing_sessions,
    ),
    get_settings,
)
