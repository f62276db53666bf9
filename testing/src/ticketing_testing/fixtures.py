"""pytest fixtures shared by every service's tests (loaded by the root conftest.py).

`nats_url` / `redis_url` are session-wide servers: those of `NATS_URL` / `REDIS_URL`
when set, else our own on free ports. `jetstream_clean` empties the TICKETING stream in
place (drops its consumers, purges its messages) so each test starts from an empty stream.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from ticketing_common.testing.servers import NatsServer, RedisServer


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
