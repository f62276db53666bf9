"""The pytest plugin (the `pytest11` entry point `ticketing_testing`): fixtures every test
folder can use.

`nats_url` / `redis_url` are session-wide servers: those of `NATS_URL` / `REDIS_URL`
when set, else our own on free ports. `nats_server` is a private one a test may restart.
`jetstream_clean` empties the TICKETING stream in place (drops its consumers, purges its
messages) so each test starts from an empty stream.

`settings`, `client` and `probe` are those of the service a test folder's conftest.py names
in a `service_under_test` fixture (a `ServiceUnderTest`): its test-scale settings on the
clean stream, an httpx client on its running app, and a `Probe` beside it. A conftest.py
overrides any of them by defining a fixture of the same name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from httpx import AsyncClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ticketing_common.config import EventSettings
from ticketing_common.tracing import configure_tracing
from ticketing_devstack.servers import NatsServer, RedisServer
from ticketing_testing.services import ServiceUnderTest, running_client, service_settings
from ticketing_testing.stream import Probe, probe_on


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    server = NatsServer()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span this process ends, kept in memory (the tracer provider is process-wide,
    so one exporter serves every test of the session)."""
    provider = configure_tracing("tests")
    assert provider is not None, "OTEL_SDK_DISABLED is set: no spans to observe"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The span exporter, emptied before and after the test."""
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A private nats-server a test may stop and restart (its file store survives)."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def jetstream_clean(nats_url: str) -> AsyncIterator[str]:
    """An empty TICKETING stream on the session server, for tests that share it."""
    import nats
    from nats.js.errors import NotFoundError

    from ticketing_common.events.stream import STREAM_NAME

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        # Deleting a file-stored stream and re-creating it at once can bring old messages
        # back (nats-server 2.15): empty it in place and drop its consumers instead.
        with contextlib.suppress(NotFoundError):
            await js.stream_info(STREAM_NAME)
            for consumer in await js.consumers_info(STREAM_NAME):
                await js.delete_consumer(STREAM_NAME, consumer.name)
            await js.purge_stream(STREAM_NAME)
        yield nats_url
    finally:
        await nc.close()


# The service under test (named by the test folder's `service_under_test` fixture) --------


@pytest.fixture
def settings(
    service_under_test: ServiceUnderTest[EventSettings], jetstream_clean: str
) -> EventSettings:
    """The service's settings for a test (`service_settings`) on the clean stream."""
    return service_settings(service_under_test.settings_type, jetstream_clean)


@pytest.fixture
async def client(
    service_under_test: ServiceUnderTest[EventSettings], settings: EventSettings
) -> AsyncIterator[AsyncClient]:
    """A client on the service's app built from `settings`, its lifespan running."""
    async with running_client(service_under_test.create_app(settings)) as http:
        yield http


@pytest.fixture
async def probe(
    service_under_test: ServiceUnderTest[EventSettings], jetstream_clean: str
) -> AsyncIterator[Probe]:
    """A `Probe` on the clean stream beside the service (whose consumers it reads)."""
    async with probe_on(jetstream_clean, service_under_test.name) as connected:
        yield connected
