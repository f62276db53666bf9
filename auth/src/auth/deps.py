"""The auth service's lifespan state, and the dependencies that read it."""

from typing import Annotated

from fastapi import Depends, Request

from auth.limits import Limits, client_address
from auth.service import Accounts
from ticketing_common.state import ServiceState, from_state, lifespan_state


class State(ServiceState):
    limits: Limits
    accounts: Accounts


async def get_client_address(request: Request) -> str:
    """The caller's address for the limits (see `client_address`)."""
    limits = lifespan_state(request, State)["limits"]
    return client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        limits.settings.TRUSTED_PROXIES,
    )


AccountsDep = Annotated[Accounts, Depends(from_state(State, lambda state: state["accounts"]))]
ClientAddress = Annotated[str, Depends(get_client_address)]
