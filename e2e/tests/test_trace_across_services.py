"""One trace across services: a request, the event it wrote, and the listener that applied
it in another service (tickets and orders in this process, on the real JetStream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from httpx import AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orders.app import create_app as create_orders_app
from orders.config import Settings as OrdersSettings
from ticketing_testing import random_id
from ticketing_testing.api import create_ticket, place_order
from ticketing_testing.events import eventually
from ticketing_testing.services import running_client, service_settings
from tickets.app import create_app as create_tickets_app
from tickets.config import Settings as TicketsSettings


@pytest.fixture
async def services(jetstream_clean: str) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    async with AsyncExitStack() as stack:
        tickets = await stack.enter_async_context(
            running_client(create_tickets_app(service_settings(TicketsSettings, jetstream_clean)))
        )
        orders = await stack.enter_async_context(
            running_client(create_orders_app(service_settings(OrdersSettings, jetstream_clean)))
        )
        yield tickets, orders


def named(spans: InMemorySpanExporter, name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name and span.kind == kind]


def consumer_of(spans: InMemorySpanExporter, subject: str, durable: str) -> list[ReadableSpan]:
    return [
        span
        for span in named(spans, f"{subject} process", SpanKind.CONSUMER)
        if span.attributes is not None
        and span.attributes.get("messaging.consumer.group.name") == durable
    ]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    found: int = span.context.trace_id
    return found


class TestOneTrace:
    async def test_post_ticket_and_the_orders_listener_that_applied_it_share_a_trace(
        self, services: tuple[AsyncClient, AsyncClient], spans: InMemorySpanExporter
    ) -> None:
        tickets, orders = services
        ticket = await create_ticket(tickets, random_id())

        await eventually(
            lambda: bool(consumer_of(spans, "ticket:created", "orders-ticket-created")),
            what="orders applied ticket:created",
        )
        (request,) = named(spans, "POST /api/tickets", SpanKind.SERVER)
        (applied,) = consumer_of(spans, "ticket:created", "orders-ticket-created")
        (published,) = named(spans, "ticket:created publish", SpanKind.PRODUCER)
        assert trace_id(applied) == trace_id(request)
        # request -> publish -> the listener's delivery, parent by parent.
        assert published.parent is not None and request.context is not None
        assert published.parent.span_id == request.context.span_id
        assert applied.parent is not None and published.context is not None
        assert applied.parent.span_id == published.context.span_id
        assert request.attributes is not None
        assert request.attributes["http.route"] == "/api/tickets"
        assert request.attributes["http.response.status_code"] == 201
        # The replica the listener wrote is there: orders can order the ticket.
        await place_order(orders, ticket["id"], random_id())

    async def test_an_incoming_traceparent_is_continued(
        self, services: tuple[AsyncClient, AsyncClient], spans: InMemorySpanExporter
    ) -> None:
        tickets, _ = services
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        traceparent = f"00-{caller_trace}-00f067aa0ba902b7-01"
        response = await tickets.get("/api/tickets", headers={"traceparent": traceparent})
        assert response.status_code == 200

        (request,) = named(spans, "GET /api/tickets", SpanKind.SERVER)
        assert f"{trace_id(request):032x}" == caller_trace
        assert request.parent is not None
        assert f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"
