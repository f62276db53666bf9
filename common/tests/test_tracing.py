"""Trace context through the outbox and in the logs (docs/OPERATIONS.md, "Traces")."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ticketing_common.app import new_app
from ticketing_common.events import EventBus, Listener, Outbox, TicketCreatedEvent
from ticketing_common.events.runtime import event_runtime
from ticketing_common.http.routing import ServiceRoute
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import connect_mongo
from ticketing_common.tracing import (
    ExportingProvider,
    WhileExported,
    current_trace_id,
    log_handler,
)
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.events import event_settings, eventually
from ticketing_testing.services import running_client

logger = logging.getLogger("ticketing.tests.tracing")


class Applied(Listener[TicketCreatedEvent]):
    payload_type = TicketCreatedEvent

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        logger.info("applied %s", data.id)


def make_app(nats_url: str, **settings: float) -> FastAPI:
    """POST writes a ticket and its ticket:created through the outbox (logging a line);
    the same app listens to ticket:created."""
    metrics = Metrics("traced")
    config = event_settings(nats_url, **settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        mongo = await connect_mongo("memory://", f"tracing-{random_id()}")
        async with event_runtime("traced", config, mongo, [mongo.db.things], metrics) as events:
            events.listen(Applied())
            await events.start()
            yield {"mongo": mongo, "outbox": events.outbox}

    app = new_app(title="Traced", lifespan=lifespan, sessions=None, metrics=metrics)
    router = APIRouter(prefix="/api/things", route_class=ServiceRoute)

    @router.post("", status_code=201)
    async def create(request: Request) -> dict[str, str]:
        outbox: Outbox = request.state.outbox
        event = TicketCreatedEvent(
            id=random_id(), version=0, title="concert", price="10", user_id=random_id()
        )
        logger.info("writing %s", event.id)
        await outbox.insert(request.state.mongo.db.things, {"_id": event.id}, [event])
        return {"id": event.id}

    app.include_router(router)
    return app


def finished(spans: InMemorySpanExporter, name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name and span.kind == kind]


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


class TestOutboxCarriesTheTrace:
    async def test_event_republished_after_an_outage_stays_in_the_writing_request_trace(
        self, nats_server: NatsServer, spans: InMemorySpanExporter
    ) -> None:
        app = make_app(nats_server.url, PUBLISH_TIMEOUT_SECONDS=0.5, OUTBOX_INTERVAL_SECONDS=0.1)
        async with running_client(app) as http:
            nats_server.stop()
            try:
                assert (await http.post("/api/things", json={})).status_code == 201
            finally:
                nats_server.start()
            await eventually(
                lambda: bool(finished(spans, "ticket:created process", SpanKind.CONSUMER)),
                timeout=20,
                what="the re-published event handled",
            )
        (request,) = finished(spans, "POST /api/things", SpanKind.SERVER)
        (handled,) = finished(spans, "ticket:created process", SpanKind.CONSUMER)
        assert trace_hex(handled) == trace_hex(request)
        # The publish that made it was the re-publisher's (the request's own failed), and
        # it too hangs off the request, from the context stored with the outbox entry.
        published = finished(spans, "ticket:created publish", SpanKind.PRODUCER)
        assert len(published) >= 2
        assert {trace_hex(span) for span in published} == {trace_hex(request)}
        assert request.context is not None
        assert all(
            span.parent is not None and span.parent.span_id == request.context.span_id
            for span in published
        )


class TestLogs:
    async def test_log_lines_of_a_request_and_of_its_event_carry_its_trace_id(
        self, jetstream_clean: str, spans: InMemorySpanExporter
    ) -> None:
        stream = io.StringIO()
        handler = log_handler()
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            async with running_client(make_app(jetstream_clean)) as http:
                assert (await http.post("/api/things", json={})).status_code == 201
                await eventually(
                    lambda: "applied" in stream.getvalue(), what="the listener's log line"
                )
            logger.info("outside any request")
        finally:
            logger.removeHandler(handler)
        (request,) = finished(spans, "POST /api/things", SpanKind.SERVER)
        lines = stream.getvalue().splitlines()
        writing = next(line for line in lines if "writing" in line)
        applied = next(line for line in lines if "applied" in line)
        outside = next(line for line in lines if "outside any request" in line)
        assert f"trace={trace_hex(request)}:" in writing
        assert f"trace={trace_hex(request)}:" in applied
        assert "trace=-:" in outside


class FailsOnce(Listener[TicketCreatedEvent]):
    payload_type = TicketCreatedEvent

    def __init__(self) -> None:
        self.calls = 0

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("database away")


class TestDeliverySpans:
    async def test_a_failed_delivery_and_its_redelivery_are_spans_of_the_same_trace(
        self, jetstream_clean: str, spans: InMemorySpanExporter
    ) -> None:
        listener = FailsOnce()
        bus = EventBus("traced", event_settings(jetstream_clean))
        await bus.connect()
        try:
            bus.add_listener(listener)
            await bus.start_listeners()
            with trace.get_tracer("tests").start_as_current_span("caller") as caller:
                await bus.publish(
                    TicketCreatedEvent(
                        id=random_id(), version=0, title="t", price="1", user_id=random_id()
                    )
                )
            await eventually(lambda: listener.calls == 2, what="the redelivery")
            await eventually(
                lambda: len(finished(spans, "ticket:created process", SpanKind.CONSUMER)) == 2,
                what="both delivery spans ended",
            )
        finally:
            await bus.close()
        first, second = sorted(
            finished(spans, "ticket:created process", SpanKind.CONSUMER),
            key=lambda span: span.start_time or 0,
        )
        caller_trace = trace.format_trace_id(caller.get_span_context().trace_id)
        assert trace_hex(first) == trace_hex(second) == caller_trace
        assert first.attributes is not None and second.attributes is not None
        assert (
            first.attributes["messaging.nats.delivered"],
            second.attributes["messaging.nats.delivered"],
        ) == (1, 2)
        assert first.status.status_code == StatusCode.ERROR
        assert second.status.status_code == StatusCode.UNSET


class TestWithoutAnExporter:
    def test_spans_carry_ids_only_until_a_processor_is_added_then_are_recorded(self) -> None:
        provider = ExportingProvider()
        provider.sampler = WhileExported(provider)
        tracer = provider.get_tracer("ticketing.tests")
        with tracer.start_as_current_span("unexported") as span:
            assert not span.is_recording()
            assert span.get_span_context().is_valid
            assert current_trace_id() == trace.format_trace_id(span.get_span_context().trace_id)
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with tracer.start_as_current_span("exported", attributes={"k": "v"}) as span:
            assert span.is_recording()
        finished = exporter.get_finished_spans()
        assert [(s.name, dict(s.attributes or {})) for s in finished] == [("exported", {"k": "v"})]
