"""The expiration worker against a real Redis and a real JetStream.

Workers run in-process from the same settings `arq expiration.worker.WorkerSettings` uses
(`worker_settings`), or as the real `arq` command in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import nats
import pytest
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker, create_worker
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from expiration.config import SERVICE, Settings
from expiration.jobs import expiration_job_id, expire_order
from expiration.worker import HEALTH_CHECK_INTERVAL, redis_settings, worker_settings
from ticketing_common.events import (
    STREAM_NAME,
    EventBus,
    OrderCreatedEvent,
    durable_name,
    ensure_stream,
)
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_created

EXPIRATION_COMPLETE = "expiration:complete"
ORDER_CREATED = "order:created"
CONSUMER = durable_name(SERVICE, OrderCreatedEvent.subject)
REDIS_DB = 3  # the expiration tests' own database, flushed before each test
ARQ_QUEUE = "arq:queue"


# Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def redis_db_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}", query=""))


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(redis_db_url))
    await pool.flushdb()
    try:
        yield pool
    finally:
        await pool.close(close_connection_pool=True)


def make_settings(nats_url: str, redis_url: str) -> Settings:
    return Settings(
        NATS_URL=nats_url,
        REDIS_URL=redis_url,
        EVENT_RETRY_MIN_SECONDS=0.2,
        EVENT_RETRY_MAX_SECONDS=1.0,
        PUBLISH_TIMEOUT_SECONDS=1.0,
    )


@pytest.fixture
def settings(jetstream_clean: str, redis_db_url: str, redis: ArqRedis) -> Settings:
    return make_settings(jetstream_clean, redis_db_url)


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NATS]:
    client = await nats.connect(settings.NATS_URL)
    await ensure_stream(client.jetstream())
    try:
        yield client
    finally:
        await client.close()


# Helpers ----------------------------------------------------------------------------------


async def publish_order_created(
    js: JetStreamContext, order_id: str, expires_at: datetime, msg_id: str | None = None
) -> None:
    event = order_created(order_id=order_id, expires_at=expires_at)
    ack = await js.publish(
        ORDER_CREATED, event.to_json(), headers={"Nats-Msg-Id": msg_id or event.message_id()}
    )
    assert not ack.duplicate


async def stream_messages(js: JetStreamContext, subject: str) -> list[RawStreamMsg]:
    state = (await js.stream_info(STREAM_NAME)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        msg = await js.get_msg(STREAM_NAME, seq)
        if msg.subject == subject:
            found.append(msg)
    return found


async def wait_for_events(js: JetStreamContext, count: int, timeout: float = 10.0) -> None:
    async def enough() -> bool:
        return len(await stream_messages(js, EXPIRATION_COMPLETE)) >= count

    await eventually(enough, timeout, f"{count} expiration:complete")


async def consumer_caught_up(js: JetStreamContext) -> bool:
    info = await js.consumer_info(STREAM_NAME, CONSUMER)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def key_exists(redis: ArqRedis, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(await redis.exists(key))

    return check


def ms(value: datetime) -> datetime:
    """`value` as it travels in a payload: milliseconds."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """The worker `arq expiration.worker.WorkerSettings` runs, in this event loop."""
    worker = create_worker(worker_settings(settings), handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())

    async def listening() -> bool:
        if task.done():
            task.result()  # a failed startup fails the test with its error
        bus = worker.ctx.get("bus")
        return isinstance(bus, EventBus) and await bus.ready()

    try:
        await eventually(listening, 30.0, "worker startup")
        yield worker
    finally:
        # Let a job that is finishing record its end (as `job_completion_wait` does on
        # SIGTERM); arq's close() cancels whatever still runs.
        async def idle() -> bool:
            return all(job.done() for job in worker.tasks.values())

        with contextlib.suppress(AssertionError):
            await eventually(idle, 5.0, "running jobs finished")
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# Tests ------------------------------------------------------------------------------------


class TestOrderCreated:
    async def test_order_expiring_in_a_second_gives_one_event_at_expiry(
        self, settings: Settings, nc: NATS
    ) -> None:
        js = nc.jetstream()
        order_id = random_id()
        expires_at = ms(datetime.now(UTC) + timedelta(seconds=1))
        async with running_worker(settings):
            await publish_order_created(js, order_id, expires_at)
            await wait_for_events(js, 1, timeout=10)
            await asyncio.sleep(1.0)  # time for a second one, if any
            events = await stream_messages(js, EXPIRATION_COMPLETE)

        assert len(events) == 1
        assert events[0].data == f'{{"orderId": "{order_id}"}}'.encode()
        assert events[0].headers is not None
        assert events[0].headers["Nats-Msg-Id"] == f"expiration:complete:{order_id}"
        assert events[0].time is not None
        assert events[0].time >= expires_at
        assert events[0].time - expires_at < timedelta(seconds=3)

    async def test_duplicate_order_created_gives_one_event(
        self, settings: Settings, nc: NATS
    ) -> None:
        js = nc.jetstream()
        order_id = random_id()
        expires_at = datetime.now(UTC) + timedelta(seconds=1)
        async with running_worker(settings) as worker:
            # Different message ids, so the stream keeps both and the listener gets both.
            await publish_order_created(js, order_id, expires_at, msg_id="first")
            await publish_order_created(js, order_id, expires_at, msg_id="second")
            assert len(await stream_messages(js, ORDER_CREATED)) == 2
            await wait_for_events(js, 1)
            await eventually(lambda: consumer_caught_up(js), what="both order:created handled")
            await asyncio.sleep(1.0)
            assert worker.jobs_complete == 1

        assert len(await stream_messages(js, EXPIRATION_COMPLETE)) == 1

    async def test_order_created_replayed_after_expiry_runs_no_second_job(
        self, settings: Settings, nc: NATS
    ) -> None:
        js = nc.jetstream()
        order_id = random_id()
        await publish_order_created(js, order_id, datetime.now(UTC))
        async with running_worker(settings):
            await wait_for_events(js, 1)

        # Delivered again from the start of the stream, long after the job ran.
        await js.delete_consumer(STREAM_NAME, CONSUMER)
        async with running_worker(settings) as worker:
            await eventually(lambda: consumer_caught_up(js), what="replay handled")
            await asyncio.sleep(0.5)
            assert worker.jobs_complete == 0

        assert len(await stream_messages(js, EXPIRATION_COMPLETE)) == 1

    @pytest.mark.parametrize("ago", [timedelta(minutes=1), timedelta(days=3)])
    async def test_past_expires_at_fires_at_once(
        self, settings: Settings, nc: NATS, ago: timedelta
    ) -> None:
        js = nc.jetstream()
        async with running_worker(settings):
            started = time.monotonic()
            await publish_order_created(js, random_id(), datetime.now(UTC) - ago)
            await wait_for_events(js, 1, timeout=5)
            assert time.monotonic() - started < 2.0

    async def test_invalid_payload_is_terminated_and_schedules_nothing(
        self, settings: Settings, nc: NATS, redis: ArqRedis
    ) -> None:
        js = nc.jetstream()
        async with running_worker(settings):
            await js.publish(ORDER_CREATED, b'{"id": "nope"}')
            await eventually(lambda: consumer_caught_up(js), what="invalid payload handled")
            info = await js.consumer_info(STREAM_NAME, CONSUMER)
        assert info.num_redelivered == 0
        assert await redis.zcard(ARQ_QUEUE) == 0


class TestExpireOrder:
    async def test_job_run_twice_publishes_one_event(self, settings: Settings, nc: NATS) -> None:
        js = nc.jetstream()
        order_id = random_id()
        bus = EventBus(SERVICE, settings)
        await bus.connect()
        try:
            ctx = {"bus": bus, "settings": settings, "job_try": 1}
            await expire_order(ctx, order_id)
            await expire_order(ctx, order_id)
        finally:
            await bus.close()
        assert len(await stream_messages(js, EXPIRATION_COMPLETE)) == 1

    async def test_publish_failure_is_retried_until_the_broker_is_back(
        self, nats_server: NatsServer, redis_db_url: str, redis: ArqRedis
    ) -> None:
        settings = make_settings(nats_server.url, redis_db_url)
        order_id = random_id()
        async with running_worker(settings) as worker:
            client = await nats.connect(nats_server.url)
            try:
                await publish_order_created(
                    client.jetstream(), order_id, datetime.now(UTC) + timedelta(seconds=1)
                )
                await eventually(
                    key_exists(redis, f"arq:job:{expiration_job_id(order_id)}"),
                    what="job queued",
                )
            finally:
                await client.close()

            nats_server.stop()

            async def retried() -> bool:
                return worker.jobs_retried >= 2

            await eventually(retried, 20, "two failed tries")
            assert worker.jobs_complete == 0
            nats_server.start()

            async def completed() -> bool:
                return worker.jobs_complete == 1

            await eventually(completed, 20, "the job completed after the broker came back")

        client = await nats.connect(nats_server.url)
        try:
            events = await stream_messages(client.jetstream(), EXPIRATION_COMPLETE)
        finally:
            await client.close()
        assert [event.data for event in events] == [f'{{"orderId": "{order_id}"}}'.encode()]


class TestWorkerProcess:
    """The real command line: `arq expiration.worker.WorkerSettings` and `arq --check`."""

    @staticmethod
    def env(settings: Settings, name: str = "worker-1") -> dict[str, str]:
        return {
            **os.environ,
            "NATS_URL": settings.NATS_URL,
            "REDIS_URL": settings.REDIS_URL,
            "EVENT_RETRY_MIN_SECONDS": "0.2",
            "EVENT_RETRY_MAX_SECONDS": "1",
            "WORKER_NAME": name,
        }

    def start(self, settings: Settings, name: str = "worker-1") -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "arq", "expiration.worker.WorkerSettings"],
            env=self.env(settings, name),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def check(self, settings: Settings, name: str = "worker-1") -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arq",
            "--check",
            "expiration.worker.WorkerSettings",
            env=self.env(settings, name),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await proc.wait()

    async def test_killed_worker_restarted_fires_pending_job_and_check_follows_it(
        self, settings: Settings, nc: NATS, redis: ArqRedis
    ) -> None:
        js = nc.jetstream()
        order_id = random_id()
        assert await self.check(settings) == 1  # no worker yet

        worker = self.start(settings)
        try:
            await eventually(
                key_exists(redis, "arq:queue:health-check:worker-1"), 30, "first health record"
            )
            assert await self.check(settings) == 0

            expires_at = datetime.now(UTC) + timedelta(seconds=3)
            await publish_order_created(js, order_id, expires_at)
            await eventually(
                key_exists(redis, f"arq:job:{expiration_job_id(order_id)}"), what="job queued"
            )
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

        # The probe notices the dead worker once its health key lapses.
        async def check_fails() -> bool:
            return await self.check(settings) == 1

        await eventually(check_fails, HEALTH_CHECK_INTERVAL + 10, "check failing")
        assert datetime.now(UTC) > expires_at
        assert await stream_messages(js, EXPIRATION_COMPLETE) == []
        assert await redis.zcard(ARQ_QUEUE) == 1

        worker = self.start(settings)
        try:
            await wait_for_events(js, 1, timeout=30)
            await asyncio.sleep(1.0)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0
        events = await stream_messages(js, EXPIRATION_COMPLETE)
        assert [event.data for event in events] == [f'{{"orderId": "{order_id}"}}'.encode()]
        assert events[0].time is not None
        assert events[0].time >= ms(expires_at)

    async def test_each_workers_check_follows_that_worker_while_another_runs(
        self, settings: Settings, redis: ArqRedis
    ) -> None:
        first, second = self.start(settings, "worker-1"), self.start(settings, "worker-2")
        try:
            for name in ("worker-1", "worker-2"):
                key = f"arq:queue:health-check:{name}"
                await eventually(key_exists(redis, key), 30, f"{name}'s health record")
            assert [await self.check(settings, n) for n in ("worker-1", "worker-2")] == [0, 0]
            first.send_signal(signal.SIGKILL)
            first.wait()

            async def first_check_fails() -> bool:
                return await self.check(settings, "worker-1") == 1

            await eventually(first_check_fails, HEALTH_CHECK_INTERVAL + 10, "worker-1 failing")
            assert await self.check(settings, "worker-2") == 0
        finally:
            for worker in (first, second):
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(15)

    def test_health_check_settings_load_without_nats_or_the_web_stack(self) -> None:
        # `arq --check` runs as the liveness probe every period: keep its imports light.
        code = (
            "import sys, expiration.worker as w; w.WorkerSettings; "
            "print(sorted(m for m in ('nats', 'fastapi', 'pymongo', 'expiration.jobs') "
            "if m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "NATS_URL": "nats://127.0.0.1:1", "REDIS_URL": "redis://x:1/0"},
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert result.stdout.strip() == b"[]"

    def test_missing_redis_url_refuses_to_start(self) -> None:
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
        result = subprocess.run(
            [sys.executable, "-m", "expiration"],
            env={**env, "NATS_URL": "nats://127.0.0.1:1"},
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert b"missing required environment variable REDIS_URL" in result.stderr
