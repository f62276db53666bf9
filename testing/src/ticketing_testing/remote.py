"""The running system through its public surface, as the end-to-end and fault tests use it:
users signing up, selling, ordering and paying over HTTP (through the gateway or one
service's own port), and waiting for what the events bring about."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

PASSWORD = "pass1234"

T = TypeVar("T")


def poll(
    check: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `check` until it returns something other than None/False; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or check}")
        time.sleep(interval)


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


def sign_up(base_url: str) -> httpx.Client:
    """A new user signed up through auth; the client carries its session cookie."""
    http = httpx.Client(base_url=base_url, trust_env=False, timeout=30.0)
    response = http.post("/api/users/signup", json={"email": new_email(), "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert "session" in http.cookies
    return http


def sell(http: httpx.Client, title: str = "Concert", price: float | str = 20) -> dict[str, Any]:
    response = http.post("/api/tickets", json={"title": title, "price": price})
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


def until_not_404(
    request: Callable[[], httpx.Response], timeout: float = 15.0, what: str = ""
) -> httpx.Response:
    """Repeat `request` while it answers 404 (a replica that has not arrived yet)."""
    last: list[httpx.Response] = []

    def attempt() -> httpx.Response | None:
        response = request()
        last[:] = [response]
        return None if response.status_code == 404 else response

    try:
        return poll(attempt, timeout, what=what)
    except AssertionError:
        raise AssertionError(f"still 404 after {timeout:g}s: {what} {last[0].text}") from None


def order_ticket(http: httpx.Client, ticket_id: str, timeout: float = 15.0) -> httpx.Response:
    """POST /api/orders for `ticket_id`, repeated while orders has no replica of it (404)."""
    return until_not_404(
        lambda: http.post("/api/orders", json={"ticketId": ticket_id}),
        timeout,
        f"order for ticket {ticket_id}",
    )


def pay(http: httpx.Client, order_id: str, token: str = "pm_card_visa") -> httpx.Response:
    """POST /api/payments, repeated while payments has no replica of the order (404)."""
    return until_not_404(
        lambda: http.post("/api/payments", json={"orderId": order_id, "token": token}),
        what=f"payment for order {order_id}",
    )


def wait_for_status(
    http: httpx.Client, order_id: str, status: str, timeout: float = 15.0
) -> dict[str, Any]:
    seen: list[str] = []

    def check() -> dict[str, Any] | None:
        response = http.get(f"/api/orders/{order_id}")
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        seen.append(order["status"])
        return order if order["status"] == status else None

    return poll(check, timeout, what=f"order {order_id} {status} (seen {sorted(set(seen))})")


def listed_ticket_ids(base_url: str) -> set[str]:
    """Every listed ticket's id, through all the pages (`Link: <...>; rel="next"`)."""
    ids: set[str] = set()
    url: str | None = "/api/tickets?limit=200"
    while url is not None:
        response = httpx.get(f"{base_url}{url}", trust_env=False)
        assert response.status_code == 200, response.text
        ids.update(ticket["id"] for ticket in response.json())
        url = response.links.get("next", {}).get("url")
    return ids


class TicketSeller(threading.Thread):
    """Creates `count` tickets one after another through the tickets API, in the background,
    recording each created id and each failure."""

    def __init__(self, tickets_url: str, cookies: Mapping[str, str], count: int) -> None:
        super().__init__(daemon=True)
        self.tickets_url = tickets_url
        self.cookies = dict(cookies)
        self.count = count
        self.created: list[str] = []
        self.failures: list[str] = []
        self.progress = threading.Condition()

    def run(self) -> None:
        with httpx.Client(
            base_url=self.tickets_url, cookies=self.cookies, trust_env=False, timeout=30.0
        ) as http:
            for number in range(self.count):
                try:
                    response = http.post(
                        "/api/tickets", json={"title": f"Show {number}", "price": 10 + number}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(f"ticket {number}: {exc!r}")
                    continue
                with self.progress:
                    if response.status_code == 201:
                        self.created.append(response.json()["id"])
                    else:
                        self.failures.append(f"ticket {number}: {response.status_code}")
                    self.progress.notify_all()

    def wait_for(self, created: int, timeout: float = 30.0) -> None:
        """Block until at least `created` tickets exist."""
        with self.progress:
            if not self.progress.wait_for(lambda: len(self.created) >= created, timeout):
                raise AssertionError(f"only {len(self.created)} tickets after {timeout:g}s")
