"""The orders API (docs/SPEC.md §3): each route parses, calls `OrderService` and answers."""

from fastapi import APIRouter, Response

from orders.deps import OrderServiceDep
from orders.schemas import OrderCreate, OrderPublic
from ticketing_common.auth import RequireUser
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.mongo import path_object_id
from ticketing_common.paging import CursorQuery, LimitQuery, PageRequest

router = APIRouter(prefix="/api/orders", tags=["orders"], route_class=ServiceRoute)


@router.post("", status_code=201, response_model_exclude_none=True)
async def create_order(
    body: OrderCreate, user: RequireUser, service: OrderServiceDep
) -> OrderPublic:
    """Order a ticket: it stays reserved for you until the order expires or is cancelled."""
    return OrderPublic.from_order(await service.place(user.id, body.ticket_id))


@router.get("", response_model_exclude_none=True)
async def list_orders(
    response: Response,
    user: RequireUser,
    service: OrderServiceDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> list[OrderPublic]:
    """Your orders, oldest first, each with its ticket as it was ordered, a page at a
    time: the `Link` header names the next page, if any."""
    request = PageRequest.parse(limit, cursor)
    page = await service.for_user(user.id, request)
    response.headers.update(page.links.link_header(router.prefix, request.limit))
    return [OrderPublic.from_order(order) for order in page.orders]


@router.get("/{order_id}", response_model_exclude_none=True)
async def show_order(order_id: str, user: RequireUser, service: OrderServiceDep) -> OrderPublic:
    """One of your orders, with its ticket as it was ordered."""
    return OrderPublic.from_order(await service.show(user.id, path_object_id(order_id)))


@router.delete("/{order_id}", status_code=204, response_class=Response)
async def cancel_order(order_id: str, user: RequireUser, service: OrderServiceDep) -> Response:
    """Cancel one of your orders and release its ticket; a paid order cannot be cancelled."""
    await service.cancel(user.id, path_object_id(order_id))
    return Response(status_code=204)
