"""The worker's `/metrics` on METRICS_PORT, and the trace an order's expiration stays in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import nats
import pytest
from arq.connections import create_pool
from arq.worker import create_worker
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from expiration.config import Settings
from expiration.worker import redis_settings, worker_settings
from ticketing_common.events import STREAM_NAME, EventBus, ensure_stream
from ticketing_devstack.servers import free_port
from ticketing_testing import random_id
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_created

ORDER_CREATED = "order:created"
EXPIRATION_COMPLETE = "expiration:complete"
REDIS_DB = 4  # this file's own database, flushed before each test


@pytest.fixture
async def redis_db_url(redis_url: str) -> AsyncIterator[str]:
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}", query=""))
    pool = await create_pool(redis_settings(url))
    await pool.flushdb()
    await pool.close(close_connection_pool=True)
    yield url


@pytest.fixture
async def nc(jetstream_clean: str) -> AsyncIterator[NATS]:
    client = await nats.connect(jetstream_clean)
    await ensure_stream(client.jetstream())
    try:
        yield client
    finally:
        await client.close()


def make_settings(nats_url: str, redis_url: str, **more: Any) -> Settings:
    return Settings.model_validate(
        {
            "NATS_URL": nats_url,
            "REDIS_URL": redis_url,
            "EVENT_RETRY_MIN_SECONDS": 0.2,
            "EVENT_RETRY_MAX_SECONDS": 1.0,
            "PUBLISH_TIMEOUT_SECONDS": 1.0,
            **more,
        }
    )


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """The worker `arq expiration.worker.WorkerSettings` runs, in this event loop."""
    worker = create_worker(worker_settings(settings), handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())

    async def listening() -> bool:
        if task.done():
            task.result()
        bus = worker.ctx.get("bus")
        return isinstance(bus, EventBus) and await bus.ready()

    try:
        await eventually(listening, 30.0, "worker startup")
        yield
    finally:
        await asyncio.sleep(0.2)  # let a finishing job record its end
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stream_messages(js: JetStreamContext, subject: str) -> list[RawStreamMsg]:
    state = (await js.stream_info(STREAM_NAME)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        msg = await js.get_msg(STREAM_NAME, seq)
        if msg.subject == subject:
            found.append(msg)
    return found


async def wait_for_events(js: JetStreamContext, count: int) -> None:
    async def enough() -> bool:
        return len(await stream_messages(js, EXPIRATION_COMPLETE)) >= count

    await eventually(enough, 10.0, f"{count} expiration:complete")


def counters(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def publish(nc: NATS, order_id: str, expires_at: datetime, headers: dict[str, str]) -> None:
    event = order_created(order_id=order_id, expires_at=expires_at)
    await nc.jetstream().publish(
        ORDER_CREATED, event.to_json(), headers={"Nats-Msg-Id": event.message_id(), **headers}
    )


class TestWorkerMetrics:
    async def test_jobs_scheduled_and_fired_show_on_the_metrics_port(
        self, jetstream_clean: str, redis_db_url: str, nc: NATS
    ) -> None:
        port = free_port()
        settings = make_settings(jetstream_clean, redis_db_url, METRICS_PORT=port)
        order_id = random_id()
        async with running_worker(settings):
            expires_at = datetime.now(UTC) + timedelta(milliseconds=300)
            await publish(nc, order_id, expires_at, {})
            await publish(nc, order_id, expires_at, {"Nats-Msg-Id": random_id()})
            await wait_for_events(nc.jetstream(), 1)
            async with httpx.AsyncClient(trust_env=False) as http:

                async def fired() -> bool:
                    response = await http.get(f"http://127.0.0.1:{port}/metrics")
                    return counters(response.text).get("ticketing_expiration_jobs_fired_total") == 1

                await eventually(fired, what="the fired job counted")
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        found = counters(text)
        assert found["ticketing_expiration_jobs_scheduled_total"] == 1
        assert found["ticketing_expiration_jobs_already_scheduled_total"] == 1
        assert 'ticketing_events_handled_total{durable="expiration-order-created"' in text
        assert 'ticketing_events_published_total{subject="expiration:complete"} 1.0' in text
        # The port is closed with the worker.
        async with httpx.AsyncClient(trust_env=False) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/metrics")


class TestWorkerTrace:
    async def test_expiration_complete_is_in_the_trace_of_the_order_created(
        self, jetstream_clean: str, redis_db_url: str, nc: NATS, spans: InMemorySpanExporter
    ) -> None:
        settings = make_settings(jetstream_clean, redis_db_url)
        tracer = trace.get_tracer("tests")
        with tracer.start_as_current_span("POST /api/orders") as placing:
            headers: dict[str, str] = {}
            propagate.inject(headers)
        order_trace = placing.get_span_context().trace_id
        async with running_worker(settings):
            await publish(nc, random_id(), datetime.now(UTC) + timedelta(milliseconds=300), headers)
            await wait_for_events(nc.jetstream(), 1)
            await asyncio.sleep(0.1)
        (message,) = await stream_messages(nc.jetstream(), EXPIRATION_COMPLETE)
        assert message.headers is not None
        traceparent = message.headers["traceparent"]
        assert traceparent.split("-")[1] == f"{order_trace:032x}"
        (job,) = [s for s in spans.get_finished_spans() if s.name == "expiration job"]
        assert job.kind == SpanKind.CONSUMER
        assert job.context is not None and job.context.trace_id == order_trace
