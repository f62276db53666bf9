"""OpenTelemetry traces: one purchase is one trace, across requests, events and jobs.

The trace context travels as W3C `traceparent` (and `tracestate`) headers: in HTTP
requests, in NATS message headers (stored with each outbox entry, so a re-publish carries
the context of the write that made the event), and in the expiration job's arguments.

`configure_tracing` installs the process' SDK tracer provider once. An exporter is added
only when the standard variables ask for one (`OTEL_TRACES_EXPORTER`, or an
`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` for OTLP over HTTP); without them spans are not
recorded (`WhileExported`) but still get ids, which logs and messages carry: no exporter,
no queue, no thread, no attributes gathered. `OTEL_SDK_DISABLED=true` turns spans off
entirely.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

logger = logging.getLogger("ticketing.tracing")

# The log line of every process: the trace id after the logger's name ("-" outside a trace).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s trace=%(trace_id)s: %(message)s"
NO_TRACE = "-"
# The headers the propagators read (W3C trace context and baggage).
_CONTEXT_HEADERS = (b"traceparent", b"tracestate", b"baggage")

_configured = False
_provider: TracerProvider | None = None


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _exporters() -> list[SpanExporter]:
    """The exporters the OTEL_* variables ask for (none when none is set)."""
    names = [name.strip().lower() for name in _env("OTEL_TRACES_EXPORTER").split(",") if name]
    if not names and (
        _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        names = ["otlp"]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            # Imported only when asked for: it brings protobuf and requests.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            protocol = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env(
                "OTEL_EXPORTER_OTLP_PROTOCOL"
            )
            if protocol and protocol != "http/protobuf":
                logger.warning(
                    "OTLP protocol %r is not installed; exporting http/protobuf", protocol
                )
            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        elif name != "none":
            logger.warning("OTEL_TRACES_EXPORTER %r is not supported; ignored", name)
    return exporters


class ExportingProvider(TracerProvider):
    """A tracer provider that knows whether any span processor was added to it."""

    exporting = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.exporting = True


class WhileExported(Sampler):
    """Record a span only while its provider has somewhere to send it (an exporter asked
    for by the variables, or a test's in-memory one): a span nobody receives would cost
    its attributes, events and end-processing for nothing. A dropped span still has a
    trace id, carried by log lines and `traceparent` (flagged not sampled)."""

    def __init__(self, provider: ExportingProvider) -> None:
        self.provider = provider

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decide = ALWAYS_ON if self.provider.exporting else ALWAYS_OFF
        return decide.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "WhileExported"


def configure_tracing(service: str) -> TracerProvider | None:
    """The process' SDK tracer provider, installed on the first call (`service` names the
    resource unless OTEL_SERVICE_NAME does); None when OTEL_SDK_DISABLED is true. A test
    adds its own span processor (an in-memory exporter) to the provider returned."""
    global _configured, _provider
    if _configured:
        return _provider
    _configured = True
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # someone installed one first: keep it
        _provider = current
        return current
    attributes = {} if _env("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = ExportingProvider(resource=Resource.create(attributes))
    if not _env("OTEL_TRACES_SAMPLER"):  # else the sampler it names
        provider.sampler = WhileExported(provider)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
        logger.info("exporting traces with %s", type(exporter).__name__)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracer(service: str) -> trace.Tracer:
    """The tracer of `service`'s spans (its instrumentation scope is `ticketing.<service>`)."""
    return trace.get_tracer(f"ticketing.{service}")


def current_context_headers() -> dict[str, str]:
    """The current trace context as headers (`traceparent`, ...); empty outside a trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context `headers` carry; None (the current context) when they carry none."""
    if not headers or "traceparent" not in headers:
        return None
    return propagate.extract(headers)


def context_from_asgi(raw_headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
    """The trace context of an ASGI request's headers (lower-case names)."""
    carrier: dict[str, str] = {}
    for name, value in raw_headers:
        if name in _CONTEXT_HEADERS:
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return context_from(carrier)


def current_trace_id() -> str:
    """The current span's trace id (32 hex digits), or "-" outside a trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return NO_TRACE
    return trace.format_trace_id(span_context.trace_id)


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` (see `current_trace_id`) to every record its handler formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id()
        return True


def log_handler() -> logging.Handler:
    """A stderr handler writing LOG_FORMAT, the trace id included."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, defaults={"trace_id": NO_TRACE}))
    handler.addFilter(TraceIdFilter())
    return handler
