from datetime import timedelta

from bson import ObjectId
from fastapi import APIRouter, Response

from orders.deps import OrdersDep, ReplicasDep, SettingsDep
from orders.repository import OPEN_STATUSES, Orders, TicketReservedError
from orders.schemas import OrderCreate, OrderPublic
from ticketing_common.auth import RequireUser, UserPayload
from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Document, path_object_id, utcnow
from ticketing_common.service import ServiceRoute

router = APIRouter(prefix="/api/orders", tags=["orders"], route_class=ServiceRoute)


async def _owned_order(orders: Orders, order_id: str, user: UserPayload) -> Document:
    order = await orders.get(path_object_id(order_id))
    if order is None:
        raise NotFoundError()
    if order["userId"] != user.id:
        raise NotAuthorizedError()
    return order


@router.post("", status_code=201)
async def create_order(
    body: OrderCreate,
    user: RequireUser,
    orders: OrdersDep,
    replicas: ReplicasDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Order a ticket: it stays reserved for you until the order expires or is cancelled."""
    ticket = await replicas.get(ObjectId(body.ticket_id))
    if ticket is None:
        raise NotFoundError()
    expires_at = utcnow() + timedelta(seconds=settings.EXPIRATION_WINDOW_SECONDS)
    try:
        order = await orders.create(user.id, ticket, expires_at)
    except TicketReservedError:
        raise BadRequestError("Ticket is already reserved") from None
    return OrderPublic.from_doc(order, ticket)


@router.get("")
async def list_orders(
    user: RequireUser, orders: OrdersDep, replicas: ReplicasDep
) -> list[OrderPublic]:
    """Your orders, oldest first, each with its ticket."""
    mine = await orders.for_user(user.id)
    tickets = await replicas.many(list({order["ticket"]["id"] for order in mine}))
    return [OrderPublic.from_doc(order, tickets.get(order["ticket"]["id"])) for order in mine]


@router.get("/{order_id}")
async def show_order(
    order_id: str, user: RequireUser, orders: OrdersDep, replicas: ReplicasDep
) -> OrderPublic:
    """One of your orders, with its ticket."""
    order = await _owned_order(orders, order_id, user)
    return OrderPublic.from_doc(order, await replicas.get(order["ticket"]["id"]))


@router.delete("/{order_id}", status_code=204, response_class=Response)
async def cancel_order(order_id: str, user: RequireUser, orders: OrdersDep) -> Response:
    """Cancel one of your orders and release its ticket; a paid order cannot be cancelled."""
    owned = await _owned_order(orders, order_id, user)
    # Cancels a `created` or `awaiting:payment` order; one already cancelled stays as it
    # is (204, no event), a paid one is refused.
    order, _changed = await orders.cancel(owned["_id"], OPEN_STATUSES, current=owned)
    if order is not None and order["status"] == OrderStatus.COMPLETE.value:
        raise BadRequestError("Cannot cancel a completed order")
    return Response(status_code=204)
