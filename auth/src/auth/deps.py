from typing import Annotated

from fastapi import Depends, Request

from auth.limits import Limits, client_address
from auth.service import Accounts
from ticketing_common.service import standard_ready


async def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.state.accounts
    return accounts


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


AccountsDep = Annotated[Accounts, Depends(get_accounts)]
ClientAddress = Annotated[str, Depends(get_client_address)]
