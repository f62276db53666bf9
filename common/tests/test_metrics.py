"""`/metrics` of a service app (docs/OPERATIONS.md): requests by route template, events by
subject and durable, the outbox backlog, one registry per app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest
from fastapi import APIRouter, FastAPI, Request
from httpx import AsyncClient
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from ticketing_common.app import new_app
from ticketing_common.errors import NotFoundError
from ticketing_common.events import Listener, Outbox, RetryLater, TicketCreatedEvent
from ticketing_common.events.runtime import event_runtime
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import connect_mongo
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.events import event_settings, eventually
from ticketing_testing.services import running_client

SERVICE = "things"
DURABLE = "things-ticket-created"
CREATED = "ticket:created"


class NotReadyOnce(Listener[TicketCreatedEvent]):
    """Applies a ticket:created on its second delivery (RetryLater on the first)."""

    payload_type = TicketCreatedEvent

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        self.seen.append(data.id)
        if self.seen.count(data.id) == 1:
            raise RetryLater("replica missing")


def make_app(nats_url: str, **settings: float) -> FastAPI:
    """A service like ours: POST writes a ticket and its ticket:created through the
    outbox, GET reads one back, a listener applies ticket:created."""

    metrics = Metrics(SERVICE)
    config = event_settings(nats_url, **settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo("memory://", f"metrics-{random_id()}")
        async with event_runtime(SERVICE, config, mongo, [mongo.db.things], metrics) as events:
            events.listen(NotReadyOnce())
            await events.start()
            yield {"mongo": mongo, "bus": events.bus, "outbox": events.outbox}

    app = new_app(title="Things", lifespan=lifespan, sessions=None, metrics=metrics)
    router = APIRouter(prefix="/api/things", route_class=ServiceRoute)

    @router.post("", status_code=201)
    async def create(request: Request) -> dict[str, str]:
        outbox: Outbox = request.state.outbox
        event = TicketCreatedEvent(
            id=random_id(), version=0, title="concert", price="10", user_id=random_id()
        )
        await outbox.insert(request.state.mongo.db.things, {"_id": event.id}, [event])
        return {"id": event.id}

    @router.get("/{thing_id}")
    async def show(thing_id: str, request: Request) -> dict[str, str]:
        if await request.state.mongo.db.things.find_one({"_id": thing_id}) is None:
            raise NotFoundError()
        return {"id": thing_id}

    app.include_router(router)
    return app


async def scrape(http: AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """`/metrics` as {(sample name, labels): value}."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def things(jetstream_clean: str) -> AsyncIterator[AsyncClient]:
    async with running_client(make_app(jetstream_clean)) as http:
        yield http


class TestRequests:
    async def test_requests_are_counted_by_route_template_method_and_status(
        self, things: AsyncClient
    ) -> None:
        first = (await things.post("/api/things", json={})).json()["id"]
        second = (await things.post("/api/things", json={})).json()["id"]
        assert (await things.get(f"/api/things/{first}")).status_code == 200
        assert (await things.get(f"/api/things/{second}/")).status_code == 200
        assert (await things.get(f"/api/things/{random_id()}")).status_code == 404

        samples = await scrape(things)
        route = "/api/things/{thing_id}"
        counted = "ticketing_http_requests_total"
        assert value(samples, counted, method="GET", route=route, status="200") == 2
        assert value(samples, counted, method="GET", route=route, status="404") == 1
        assert value(samples, counted, method="POST", route="/api/things", status="201") == 2
        latency = "ticketing_http_request_duration_seconds_count"
        assert value(samples, latency, method="GET", route=route) == 3
        # No series per id: the raw paths appear nowhere.
        text = (await things.get("/metrics")).text
        assert first not in text
        assert second not in text

    async def test_unknown_paths_and_methods_are_not_a_series_each(
        self, things: AsyncClient
    ) -> None:
        for n in range(3):
            assert (await things.get(f"/nowhere/{n}")).status_code == 404
        assert (await things.request("BREW", "/api/things")).status_code in (400, 405)

        samples = await scrape(things)
        counted = "ticketing_http_requests_total"
        assert value(samples, counted, method="GET", route="unmatched", status="404") == 3
        brewed = [
            labels for name, labels in samples if name == counted and ("method", "other") in labels
        ]
        assert len(brewed) == 1
        assert not any(("method", "BREW") in labels for _, labels in samples)

    async def test_each_app_counts_only_its_own_requests(self, jetstream_clean: str) -> None:
        async with (
            running_client(make_app(jetstream_clean)) as one,
            running_client(make_app(jetstream_clean)) as other,
        ):
            for _ in range(3):
                await one.get(f"/api/things/{random_id()}")
            await other.get(f"/api/things/{random_id()}")
            route = "/api/things/{thing_id}"
            counted = "ticketing_http_requests_total"
            one_samples, other_samples = await scrape(one), await scrape(other)
        assert value(one_samples, counted, method="GET", route=route, status="404") == 3
        assert value(other_samples, counted, method="GET", route=route, status="404") == 1


class TestEvents:
    async def test_published_retried_and_handled_events_are_counted(
        self, things: AsyncClient
    ) -> None:
        await things.post("/api/things", json={})

        async def handled() -> bool:
            samples = await scrape(things)
            return (
                value(samples, "ticketing_events_handled_total", subject=CREATED, durable=DURABLE)
                == 1
            )

        await eventually(handled, what="ticket:created handled")
        samples = await scrape(things)
        assert value(samples, "ticketing_events_published_total", subject=CREATED) == 1
        assert (
            value(
                samples,
                "ticketing_events_retried_total",
                subject=CREATED,
                durable=DURABLE,
                reason="not_ready",
            )
            == 1
        )

    async def test_invalid_event_is_counted_terminated(
        self, things: AsyncClient, jetstream_clean: str
    ) -> None:
        nc = await nats.connect(jetstream_clean)
        try:
            await nc.jetstream().publish(CREATED, b'{"id": "nope"}')
        finally:
            await nc.close()

        async def terminated() -> bool:
            samples = await scrape(things)
            return (
                value(
                    samples,
                    "ticketing_events_terminated_total",
                    subject=CREATED,
                    durable=DURABLE,
                    reason="invalid",
                )
                == 1
            )

        await eventually(terminated, what="invalid ticket:created terminated")
        samples = await scrape(things)
        assert (
            value(samples, "ticketing_events_handled_total", subject=CREATED, durable=DURABLE) == 0
        )


class TestOutboxGauges:
    async def test_backlog_and_its_age_grow_while_the_broker_is_down_and_drain_after(
        self, nats_server: NatsServer
    ) -> None:
        app = make_app(nats_server.url, PUBLISH_TIMEOUT_SECONDS=0.5, OUTBOX_INTERVAL_SECONDS=0.1)
        async with running_client(app) as http:
            samples = await scrape(http)
            assert value(samples, "ticketing_outbox_backlog", collection="things") == 0
            assert value(samples, "ticketing_outbox_oldest_age_seconds", collection="things") == 0

            nats_server.stop()
            try:
                # The write is stored; its event cannot leave.
                assert (await http.post("/api/things", json={})).status_code == 201

                async def backlog_aging() -> bool:
                    samples = await scrape(http)
                    return (
                        value(samples, "ticketing_outbox_backlog", collection="things") == 1
                        and value(
                            samples, "ticketing_outbox_oldest_age_seconds", collection="things"
                        )
                        > 0.5
                    )

                await eventually(backlog_aging, timeout=15, what="backlog of 1, aging")
            finally:
                nats_server.start()

            async def drained() -> bool:
                samples = await scrape(http)
                return value(samples, "ticketing_outbox_backlog", collection="things") == 0

            await eventually(drained, timeout=20, what="backlog drained")
            samples = await scrape(http)
            assert value(samples, "ticketing_outbox_oldest_age_seconds", collection="things") == 0
            assert value(samples, "ticketing_events_published_total", subject=CREATED) == 1
