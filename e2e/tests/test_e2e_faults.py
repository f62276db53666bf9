"""Faults: processes killed or restarted under load, and nothing is lost.

Each test starts the processes it needs itself, one by one, with the commands and
environments of `make dev`'s Procfile (honcho would stop the whole stack when one process
exits). Services are reached on their own ports; every process is stopped at the end.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
from arq.connections import RedisSettings, create_pool
from arq.jobs import Job, JobStatus

from expiration.jobs import expiration_job_id
from ticketing_testing import cookie_for
from ticketing_testing.processes import Processes, processes
from ticketing_testing.remote import TicketSeller, order_ticket, poll, sell, wait_for_status

# Quick redeliveries, so a test waits for seconds, not for production's back-off.
FAST_EVENTS = {
    "EVENT_RETRY_MIN_SECONDS": "0.2",
    "EVENT_RETRY_MAX_SECONDS": "1",
    "OUTBOX_INTERVAL_SECONDS": "0.5",
}
TICKETS = 40


def client(procs: Processes, service: str) -> httpx.Client:
    """A signed-in client of one service, on its own port (the session key of the plan)."""
    key = procs.spec("tickets").env["JWT_KEY"]
    return httpx.Client(
        base_url=procs.url(service), cookies=cookie_for(key=key), trust_env=False, timeout=30.0
    )


def seller_for(procs: Processes) -> TicketSeller:
    key = procs.spec("tickets").env["JWT_KEY"]
    return TicketSeller(procs.url("tickets"), cookie_for(key=key), TICKETS)


def assert_every_ticket_replicated_in_orders(procs: Processes, ticket_ids: list[str]) -> None:
    """Orders admits an order only for a ticket it has a replica of (404 otherwise). One
    buyer per ticket: a user may hold only a few open orders at once."""
    for ticket_id in ticket_ids:
        with client(procs, "orders") as buyer:
            response = order_ticket(buyer, ticket_id, timeout=20.0)
            assert response.status_code == 201, f"{ticket_id}: {response.text}"


def expiration_job_status(redis_url: str, order_id: str) -> JobStatus:
    async def status() -> JobStatus:
        redis = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            return await Job(expiration_job_id(order_id), redis).status()
        finally:
            await redis.aclose()

    return asyncio.run(status())


class TestOrdersKilled:
    def test_orders_killed_while_tickets_are_created_has_every_ticket_after_restart(
        self,
    ) -> None:
        with processes(FAST_EVENTS) as procs:
            procs.start("nats", "tickets", "orders")
            seller = seller_for(procs)
            seller.start()
            seller.wait_for(10)

            procs.kill("orders")
            seller.wait_for(25)
            procs.start("orders")
            seller.join(60)

            assert not seller.is_alive()
            assert seller.failures == []
            assert len(seller.created) == TICKETS
            assert_every_ticket_replicated_in_orders(procs, seller.created)


class TestExpirationWorkerKilled:
    def test_worker_killed_with_a_job_pending_still_expires_the_order_after_restart(
        self,
    ) -> None:
        env = {**FAST_EVENTS, "EXPIRATION_WINDOW_SECONDS": "4"}
        with processes(env) as procs:
            procs.start("nats", "redis", "tickets", "orders", "expiration")
            with client(procs, "tickets") as seller, client(procs, "orders") as buyer:
                ticket = sell(seller)
                created = order_ticket(buyer, ticket["id"])
                assert created.status_code == 201, created.text
                order = created.json()
                expires_at = datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00"))
                poll(
                    lambda: (
                        expiration_job_status(procs.plan.redis_url, order["id"])
                        == JobStatus.deferred
                    ),
                    what="the order's expiration job is scheduled",
                )

                procs.kill("expiration")
                # Past the due time with no worker: nothing expires the order.
                time.sleep(max(0.0, expires_at.timestamp() - time.time()) + 1.5)
                assert buyer.get(f"/api/orders/{order['id']}").json()["status"] == "created"
                procs.start("expiration")

                wait_for_status(buyer, order["id"], "cancelled", timeout=30)


class TestNatsRestarted:
    def test_nats_restarted_while_tickets_are_created_loses_no_event(self) -> None:
        # Publishes give up after 1 s, so tickets created while NATS is down leave their
        # events in the outbox, for the re-publisher once NATS is back.
        env = {**FAST_EVENTS, "PUBLISH_TIMEOUT_SECONDS": "1"}
        with processes(env) as procs:
            procs.start("nats", "tickets", "orders")
            seller = seller_for(procs)
            seller.start()
            seller.wait_for(10)

            procs.stop("nats")
            before = len(seller.created)
            time.sleep(3)
            created_while_down = len(seller.created) - before
            procs.start("nats")  # same port, same file store
            seller.join(60)

            assert not seller.is_alive()
            assert seller.failures == []
            assert len(seller.created) == TICKETS
            # The scenario happened: tickets were sold during the outage, their publishes
            # gave up and the re-publisher sent them later (as the service logs).
            assert created_while_down >= 1
            tickets_log = procs.log("tickets")
            assert "in the outbox for later" in tickets_log
            assert "re-published" in tickets_log
            assert_every_ticket_replicated_in_orders(procs, seller.created)
