"""Prometheus metrics of one app or worker (docs/OPERATIONS.md lists them all).

Each app (and the expiration worker) owns a `Metrics`: its own `CollectorRegistry`, so
several apps in one process (the tests) never collide on a name, and `/metrics` shows only
that app's series. The hot paths take label children from small caches built on first
use (one dict lookup, no registry lookup by name, no label validation per call).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Request latency buckets (seconds): our answers take milliseconds, a payment seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Methods kept as they are; any other is counted as `other`, so a client sending made-up
# methods cannot grow the series without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route label of a request no route matched (404 on an unknown path): never the raw
# path, for the same reason.
UNMATCHED = "unmatched"

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class ListenerCounters:
    """One listener's (subject, durable) counters, resolved once."""

    handled: Any
    retried_not_ready: Any
    retried_failed: Any
    terminated_invalid: Any
    terminated_gave_up: Any


class _OutboxCollector(Collector):
    """The outbox gauges, from what the re-publisher last saw (see `Metrics.outbox_seen`);
    the age is computed at scrape time, so it grows between rounds as it should."""

    def __init__(self) -> None:
        # collection -> (entries left unpublished, enqueue time of the oldest, epoch s)
        self.state: dict[str, tuple[int, float | None]] = {}

    def collect(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "ticketing_outbox_backlog",
            "Events written to the outbox and not yet acknowledged by the stream, "
            "as of the last re-publisher round",
            labels=["collection"],
        )
        age = GaugeMetricFamily(
            "ticketing_outbox_oldest_age_seconds",
            "Age of the oldest event still in the outbox (0 when it is empty)",
            labels=["collection"],
        )
        now = time.time()
        for collection, (count, oldest) in sorted(self.state.items()):
            backlog.add_metric([collection], count)
            age.add_metric([collection], 0.0 if oldest is None else max(0.0, now - oldest))
        yield backlog
        yield age


class Metrics:
    """An app's (or worker's) metrics on a registry of its own; `service` names it (and
    its traces' instrumentation scope), never a label: the scrape target says which."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        # The process' CPU, memory and open files, Python's GC and version, as the default
        # registry would have them.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._requests = Counter(
            "ticketing_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "ticketing_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._published = Counter(
            "ticketing_events_published_total",
            "Events the stream acknowledged (a duplicate the stream dropped included)",
            ["subject"],
            registry=self.registry,
        )
        self._handled = Counter(
            "ticketing_events_handled_total",
            "Events a listener applied and acknowledged",
            ["subject", "durable"],
            registry=self.registry,
        )
        self._retried = Counter(
            "ticketing_events_retried_total",
            "Deliveries handed back for redelivery with back-off: `not_ready` when the "
            "handler said RetryLater, `failed` when it raised",
            ["subject", "durable", "reason"],
            registry=self.registry,
        )
        self._terminated = Counter(
            "ticketing_events_terminated_total",
            "Events dropped for good: `invalid` payloads, or `gave_up` after "
            "EVENT_GIVE_UP_SECONDS of failed deliveries",
            ["subject", "durable", "reason"],
            registry=self.registry,
        )
        self._outbox = _OutboxCollector()
        self.registry.register(self._outbox)
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}
        self._published_children: dict[str, Any] = {}
        self._counters: dict[str, Counter] = {}

    # Domain metrics ---------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A service's own counter on this registry. Asked again for `name` (a lifespan of
        the same app run a second time), it gives the counter it made the first time."""
        counter = self._counters.get(name)
        if counter is None:
            counter = Counter(name, documentation, list(labels), registry=self.registry)
            self._counters[name] = counter
        return counter

    # HTTP -------------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in KNOWN_METHODS:
            method = "other"
        key = (method, route, status)
        requests = self._request_children.get(key)
        if requests is None:
            requests = self._request_children[key] = self._requests.labels(
                method, route, str(status)
            )
        requests.inc()
        latency = self._latency_children.get(key[:2])
        if latency is None:
            latency = self._latency_children[key[:2]] = self._latency.labels(method, route)
        latency.observe(seconds)

    # Events -----------------------------------------------------------------------------

    def published(self, subject: str) -> None:
        child = self._published_children.get(subject)
        if child is None:
            child = self._published_children[subject] = self._published.labels(subject)
        child.inc()

    def listener(self, subject: str, durable: str) -> ListenerCounters:
        """The counters of one listener (resolve once, when it is bound)."""
        return ListenerCounters(
            handled=self._handled.labels(subject, durable),
            retried_not_ready=self._retried.labels(subject, durable, "not_ready"),
            retried_failed=self._retried.labels(subject, durable, "failed"),
            terminated_invalid=self._terminated.labels(subject, durable, "invalid"),
            terminated_gave_up=self._terminated.labels(subject, durable, "gave_up"),
        )

    def outbox_seen(self, collection: str, backlog: int, oldest: float | None) -> None:
        """What a re-publisher round left in `collection`: the entries still unpublished
        and the enqueue time (epoch seconds) of the oldest, None when none is left."""
        self._outbox.state[collection] = (backlog, oldest)

    def outbox_watch(self, collections: Iterable[str]) -> None:
        """Show `collections` at 0 until the first round says otherwise."""
        for name in collections:
            self._outbox.state.setdefault(name, (0, None))

    # Exposition -------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus' text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> WSGIServer:
        """Serve the metrics on `port` (any path, `/metrics` included) from a daemon thread,
        for a process without an HTTP app (the expiration worker); the server, to
        `shutdown()` at stop."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
