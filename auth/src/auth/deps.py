from typing import Annotated

from fastapi import Depends, Request

from auth.limits import Limits, client_address
from auth.passwords import Passwords
from auth.repository import Users
from ticketing_common.service import standard_ready


async def get_users(request: Request) -> Users:
    users: Users = request.state.users
    return users


async def get_passwords(request: Request) -> Passwords:
    passwords: Passwords = request.state.passwords
    return passwords


async def get_limits(request: Request) -> Limits:
    limits: Limits = request.state.limits
    return limits


async def get_client_address(request: Request) -> str:
    """The caller's address for the limits (see `client_address`)."""
    limits: Limits = request.state.limits
    return client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        limits.settings.TRUSTED_PROXIES,
    )


async def auth_ready(request: Request) -> dict[str, bool]:
    """The standard checks, and Redis (the limits: no sign-in or sign-up without it)."""
    checks = await standard_ready(request)
    limits: Limits | None = getattr(request.state, "limits", None)
    if limits is not None:
        checks["limits"] = await limits.ready()
    return checks


UsersDep = Annotated[Users, Depends(get_users)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
ClientAddress = Annotated[str, Depends(get_client_address)]
