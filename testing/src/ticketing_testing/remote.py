"""What the end-to-end and fault tests share: users over HTTP, polling, localstripe, processes.

Everything here talks to the system through its public surface (the gateway or a
service's own port, and localstripe's Stripe API); the fault tests start single
processes with the very commands and environments `make dev` runs (`build_plan`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ticketing_devstack.plan import Plan, ProcessSpec, build_plan, stop_process
from ticketing_devstack.probes import wait_until_ready
from ticketing_devstack.runner import MARKER, kill_run
from ticketing_devstack.stack import isolated_environ

PASSWORD = "pass1234"
STRIPE_KEY = "sk_test_dev"  # make dev's localstripe key (ticketing_devstack.plan)

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
    response = httpx.get(f"{base_url}/api/tickets", trust_env=False)
    assert response.status_code == 200, response.text
    return {ticket["id"] for ticket in response.json()}


# -- localstripe ----------------------------------------------------------------------


def stripe_list(localstripe_url: str, resource: str) -> list[dict[str, Any]]:
    """Every object of a localstripe list endpoint (`payment_intents`, `charges`), paged."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 100}
    while True:
        response = httpx.get(
            f"{localstripe_url}/v1/{resource}",
            params=params,
            auth=(STRIPE_KEY, ""),
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["starting_after"] = page["data"][-1]["id"]


def payment_intents_for(localstripe_url: str, order_id: str) -> list[dict[str, Any]]:
    """The PaymentIntents payments created for the order (it tags them `metadata.orderId`)."""
    return [
        intent
        for intent in stripe_list(localstripe_url, "payment_intents")
        if (intent.get("metadata") or {}).get("orderId") == order_id
    ]


# -- single processes of the plan (fault tests) -----------------------------------------


class Processes:
    """Processes of a `make dev` plan, started one by one with the Procfile's command and
    environment, each logging to its own file; `close()` stops every one of them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.environ = isolated_environ(env)
        self.plan: Plan = build_plan(self.environ)
        # As the runner marks them: every process of the run can be found by its folder.
        self.environ[MARKER] = str(self.plan.run_dir)
        self.log_dir = Path(self.plan.run_dir) / "logs"
        self.log_dir.mkdir()
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def spec(self, name: str) -> ProcessSpec:
        return self.plan.process(name)

    def url(self, name: str) -> str:
        url = self.spec(name).url
        assert url is not None, name
        return url

    def start(self, *names: str, timeout: float = 60.0) -> None:
        """Start the named processes (in order) and wait until each passes its probe."""
        for name in names:
            assert name not in self.running, f"{name} is already running"
            spec = self.spec(name)
            with (self.log_dir / f"{name}.log").open("ab") as log:
                self.running[name] = spec.popen(env=self.environ, stdout=log, cwd=self.plan.root)
        try:
            wait_until_ready([self.spec(name) for name in names], timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.tail(*names)}") from None

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        """Signal the process (SIGKILL: kill -9) and wait until it has exited."""
        return stop_process(self.running.pop(name), sig)

    def kill(self, name: str) -> int:
        return self.stop(name, signal.SIGKILL)

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")
        return ""

    def tail(self, *names: str, lines: int = 30) -> str:
        parts = []
        for name in names or tuple(self.running):
            text = "\n".join(self.log(name).splitlines()[-lines:])
            parts.append(f"--- {name} log ---\n{text}")
        return "\n".join(parts)

    def close(self) -> list[str]:
        """Stop everything this object started; what is still alive afterwards (empty)."""
        for name in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(name)
        left = [f"process {pid}" for pid in kill_run(self.plan.run_dir)]
        shutil.rmtree(self.plan.run_dir, ignore_errors=True)
        return left


@contextlib.contextmanager
def processes(env: Mapping[str, str] | None = None) -> Iterator[Processes]:
    """`Processes` for one test: stopped at the end whatever happens, logs shown on failure."""
    procs = Processes(env)
    try:
        yield procs
    except BaseException:
        print(procs.tail(*procs.running, lines=80))
        raise
    finally:
        left = procs.close()
    assert left == [], f"still running after the test: {left}"


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
