import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from orders.config import Settings, get_settings
from orders.events.listeners import (
    ExpirationCompleteListener,
    PaymentCreatedListener,
    TicketCreatedListener,
    TicketUpdatedListener,
)
from orders.repository import Orders, TicketReplicas
from orders.routes import router
from ticketing_common.auth import SessionCodec, read_current_user, require_user
from ticketing_common.errors import NotAuthorizedError, error_response
from ticketing_common.events import EventBus, Outbox
from ticketing_common.mongo import connect_mongo
from ticketing_common.service import new_app

SERVICE = "orders"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo(settings.MONGO_URI, SERVICE)
        bus = EventBus(SERVICE, settings)
        outbox: Outbox | None = None
        try:
            await bus.connect()
            outbox = Outbox(bus, [mongo.db.orders])
            orders = Orders(mongo.db.orders, outbox)
            replicas = TicketReplicas(mongo.db.tickets)
            await orders.create_indexes()
            bus.add_listener(TicketCreatedListener(replicas))
            bus.add_listener(TicketUpdatedListener(replicas))
            bus.add_listener(ExpirationCompleteListener(orders))
            bus.add_listener(PaymentCreatedListener(orders))
            await outbox.republish()
            outbox.start(settings.OUTBOX_INTERVAL_SECONDS)
            await bus.start_listeners(recreate=mongo.in_memory)
            yield {
                "settings": settings,
                "mongo": mongo,
                "bus": bus,
                "orders": orders,
                "replicas": replicas,
            }
        finally:
            if outbox is not None:
                await outbox.stop()
            await bus.close()
            await mongo.close()

    async def ready(request: Request) -> dict[str, bool]:
        return {
            "database": await request.state.mongo.ping(),
            "events": await request.state.bus.ready(),
        }

    app = new_app(
        title="Ticketing orders",
        lifespan=lifespan,
        sessions=SessionCodec(jwt_key=settings.JWT_KEY),
        ready=ready,
    )
    app.include_router(router)
    _answer_401_before_body_errors(app)
    return app


def _uses_require_user(dependant: Dependant) -> bool:
    return any(
        dep.call is require_user or _uses_require_user(dep) for dep in dependant.dependencies
    )


def _answer_401_before_body_errors(app: FastAPI) -> None:
    """SPEC §1: a protected route answers 401 before it validates the body.

    The shared handler looks the route up among `app.router.routes`, where FastAPI 0.165
    keeps an included router as one `_IncludedRouter` entry, so it misses every route of
    ours and a signed-out request with a malformed body got 400. The matched route is in
    the scope; check it here and leave everything else to the shared handler.
    """
    shared = app.exception_handlers[RequestValidationError]

    async def handle(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        if (
            isinstance(route, APIRoute)
            and _uses_require_user(route.dependant)
            and read_current_user(request) is None
        ):
            return error_response(NotAuthorizedError())
        response = shared(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(RequestValidationError, handle)
