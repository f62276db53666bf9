from datetime import timedelta

from fastapi import APIRouter, Response

from orders.deps import OrdersDep, ReplicasDep, SettingsDep
from orders.models import OPEN_STATUSES, CancelReason, Order
from orders.repository import Orders, TicketReservedError, TooManyOpenOrdersError
from orders.schemas import OrderCreate, OrderPublic
from ticketing_common.auth import RequireUser, UserPayload
from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import OrderStatus
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.mongo import path_object_id, utcnow
from ticketing_common.paging import CursorQuery, LimitQuery, PageRequest

router = APIRouter(prefix="/api/orders", tags=["orders"], route_class=ServiceRoute)


async def _owned_order(orders: Orders, order_id: str, user: UserPayload) -> Order:
    order = await orders.get(path_object_id(order_id))
    if order is None:
        raise NotFoundError()
    if order.user_id != user.id:
        raise NotAuthorizedError()
    return order


@router.post("", status_code=201, response_model_exclude_none=True)
async def create_order(
    body: OrderCreate,
    user: RequireUser,
    orders: OrdersDep,
    replicas: ReplicasDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Order a ticket: it stays reserved for you until the order expires or is cancelled."""
    ticket = await replicas.get(body.ticket_id)
    if ticket is None:
        raise NotFoundError()
    expires_at = utcnow() + timedelta(seconds=settings.EXPIRATION_WINDOW_SECONDS)
    try:
        order = await orders.create(user.id, ticket, expires_at)
    except TicketReservedError:
        raise BadRequestError("Ticket is already reserved") from None
    except TooManyOpenOrdersError:
        raise BadRequestError(
            f"You already have {settings.MAX_OPEN_ORDERS_PER_USER} open orders; "
            "pay for or cancel one first"
        ) from None
    # The seller's edit may have reached the replica after it was read: the listener's
    # check of it may have run before this order existed, so check here too.
    now = await replicas.get(ticket.id)
    if now is not None and now.made_stale(order.ticket):
        await orders.cancel_stale(now)
        order = await orders.get(order.id) or order
    return OrderPublic.from_order(order)


@router.get("", response_model_exclude_none=True)
async def list_orders(
    response: Response,
    user: RequireUser,
    orders: OrdersDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> list[OrderPublic]:
    """Your orders, oldest first, each with its ticket as it was ordered, a page at a
    time: the `Link` header names the next page, if any."""
    request = PageRequest.parse(limit, cursor)
    page = await orders.for_user(user.id, request)
    response.headers.update(page.links.link_header(router.prefix, request.limit))
    return [OrderPublic.from_order(order) for order in page.orders]


@router.get("/{order_id}", response_model_exclude_none=True)
async def show_order(order_id: str, user: RequireUser, orders: OrdersDep) -> OrderPublic:
    """One of your orders, with its ticket as it was ordered."""
    return OrderPublic.from_order(await _owned_order(orders, order_id, user))


@router.delete("/{order_id}", status_code=204, response_class=Response)
async def cancel_order(order_id: str, user: RequireUser, orders: OrdersDep) -> Response:
    """Cancel one of your orders and release its ticket; a paid order cannot be cancelled."""
    owned = await _owned_order(orders, order_id, user)
    # Cancels a `created` or `awaiting:payment` order; one already cancelled stays as it
    # is (204, no event), a paid one is refused.
    order, _changed = await orders.cancel(
        owned.id, OPEN_STATUSES, CancelReason.BY_BUYER, current=owned
    )
    if order is not None and order.status is OrderStatus.COMPLETE:
        raise BadRequestError("Cannot cancel a completed order")
    return Response(status_code=204)
