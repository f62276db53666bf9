"""The pages (docs/SPEC.md §6). Each asks the API on the browser's behalf and renders HTML."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from client.api import ApiDep
from client.config import Settings
from client.models import format_seconds
from client.pages import load_page, load_user, render
from ticketing_common.http.routing import ServiceRoute

router = APIRouter(tags=["pages"], default_response_class=HTMLResponse, route_class=ServiceRoute)


@router.get("/")
async def list_tickets(request: Request, api: ApiDep, cursor: str | None = None) -> HTMLResponse:
    """Tickets for sale, a page at a time: `cursor` (from the Next link) names the page."""
    user, page = await load_page(api, api.list_tickets(cursor))
    context = {"tickets": page.items, "cursor": cursor, "next_cursor": page.next_cursor}
    return render(request, "index.html", context, user=user)


async def _auth_form(
    request: Request, api: ApiDep, heading: str, action: str, password_autocomplete: str
) -> HTMLResponse:
    user = await load_user(api)
    context = {
        "heading": heading,
        "api_path": f"/api/users/{action}",
        "password_autocomplete": password_autocomplete,
    }
    return render(request, "auth.html", context, user=user)


@router.get("/auth/signup")
async def show_signup(request: Request, api: ApiDep) -> HTMLResponse:
    """The sign-up form."""
    return await _auth_form(request, api, "Sign Up", "signup", "new-password")


@router.get("/auth/signin")
async def show_signin(request: Request, api: ApiDep) -> HTMLResponse:
    """The sign-in form."""
    return await _auth_form(request, api, "Sign In", "signin", "current-password")


@router.get("/auth/signout")
async def show_signout(request: Request, api: ApiDep) -> HTMLResponse:
    """The Sign Out button on a page of its own; a GET never signs out (the button posts
    to the API, as the header's does)."""
    user = await load_user(api)
    return render(request, "signout.html", {}, user=user)


@router.get("/tickets/new")
async def new_ticket(request: Request, api: ApiDep) -> HTMLResponse:
    """The form to sell a ticket."""
    user = await load_user(api)
    return render(request, "ticket_new.html", {}, user=user)


@router.get("/tickets/{ticket_id}")
async def show_ticket(request: Request, api: ApiDep, ticket_id: str) -> HTMLResponse:
    """A ticket, and the button to purchase it."""
    user, ticket = await load_page(api, api.show_ticket(ticket_id))
    return render(request, "ticket_show.html", {"ticket": ticket}, user=user)


@router.get("/orders")
async def list_orders(request: Request, api: ApiDep, cursor: str | None = None) -> HTMLResponse:
    """The signed-in user's orders, a page at a time, as the tickets are."""
    user, page = await load_page(api, api.list_orders(cursor))
    context = {"orders": page.items, "cursor": cursor, "next_cursor": page.next_cursor}
    return render(request, "orders_index.html", context, user=user)


@router.get("/orders/{order_id}")
async def show_order(request: Request, api: ApiDep, order_id: str) -> HTMLResponse:
    """An order: the time left and the payment form while it can be paid."""
    user, order = await load_page(api, api.show_order(order_id))
    settings: Settings = request.app.state.settings
    now = datetime.now(UTC)
    seconds_left = order.seconds_left(now)
    context = {
        "order": order,
        "state": order.state(now).value,
        "seconds_left": seconds_left,
        "time_left": format_seconds(seconds_left),
        "stripe_js_url": settings.STRIPE_JS_URL,
        "stripe_key": settings.STRIPE_PUBLISHABLE_KEY,
    }
    return render(request, "order_show.html", context, user=user)
