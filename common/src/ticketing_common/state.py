"""The lifespan state of a service: what its lifespan yields, typed, and how `deps.py`
reads it.

A service declares `State`, a TypedDict extending `ServiceState` with its repositories
and services; its lifespan (`ticketing_common.app.Service`) yields one, Starlette hands
every request a copy, and `from_state` turns a field of it into a FastAPI dependency. A
TypedDict rather than a dataclass because the lifespan state is a mapping by the ASGI
extension's definition: requests see the same names in `request.state`, and the tests see
them in what the lifespan yielded.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict, TypeVar, cast

from fastapi import Request

from ticketing_common.events.bus import EventBus
from ticketing_common.mongo import Mongo


class ServiceState(TypedDict):
    """What every HTTP service's state holds (what readiness checks)."""

    mongo: Mongo
    # None in a service without events (auth).
    bus: EventBus | None


S = TypeVar("S", bound=ServiceState)
T = TypeVar("T")


def lifespan_state(request: Request, kind: type[S]) -> S:
    """The state the lifespan yielded, seen as `kind` (the service's `State`, which the
    lifespan built; a TypedDict cannot be checked at run time)."""
    state: dict[str, Any] = request.scope["state"]
    return cast(S, state)


def from_state(kind: type[S], pick: Callable[[S], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency giving `pick(state)`: `Annotated[Orders, Depends(from_state(State,
    lambda state: state["orders"]))]`."""

    async def dependency(request: Request) -> T:
        return pick(lifespan_state(request, kind))

    return dependency
