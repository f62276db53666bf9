"""Redis stays bounded: a finished job's result expires after KEEP_RESULT_SECONDS (not
7 days), and the cluster's Redis has a memory cap with a policy that evicts results first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import nats
import pytest
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker, create_worker

from expiration.config import Settings
from expiration.jobs import expiration_job_id
from expiration.worker import redis_settings, worker_settings
from ticketing_common.events import EventBus, OrderCreatedEvent, OrderStatus
from ticketing_common.events.payloads import OrderTicketRef
from ticketing_testing import random_id
from ticketing_testing.deployment import load_manifests, only_container
from ticketing_testing.events import eventually

REDIS_DB = 4  # this file's own database, flushed before each test
KEEP = 2.0
RESULT_KEY = "arq:result:{job_id}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(_db_url(redis_url)))
    await pool.flushdb()
    try:
        yield pool
    finally:
        await pool.close(close_connection_pool=True)


def _db_url(redis_url: str) -> str:
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}", query=""))


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    worker = create_worker(worker_settings(settings), handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())

    async def listening() -> bool:
        if task.done():
            task.result()
        bus = worker.ctx.get("bus")
        return isinstance(bus, EventBus) and await bus.ready()

    try:
        await eventually(listening, 30.0, "worker startup")
        yield worker
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class TestJobResults:
    async def test_result_expires_after_keep_result_seconds(
        self, jetstream_clean: str, redis_url: str, redis: ArqRedis
    ) -> None:
        settings = Settings(
            NATS_URL=jetstream_clean,
            REDIS_URL=_db_url(redis_url),
            PUBLISH_TIMEOUT_SECONDS=1.0,
            KEEP_RESULT_SECONDS=KEEP,
        )
        order_id = random_id()
        key = RESULT_KEY.format(job_id=expiration_job_id(order_id))
        event = OrderCreatedEvent(
            id=order_id,
            version=0,
            status=OrderStatus.CREATED,
            user_id=random_id(),
            expires_at=datetime.now(UTC),  # due at once
            ticket=OrderTicketRef(id=random_id(), price="20", version=0),
        )
        async with running_worker(settings) as worker:
            nc = await nats.connect(jetstream_clean)
            try:
                await nc.jetstream().publish(
                    event.subject.value,
                    event.to_json(),
                    headers={"Nats-Msg-Id": event.message_id()},
                )
            finally:
                await nc.close()
            await eventually(lambda: worker.jobs_complete == 1, what="the job run")

            async def result_kept() -> bool:
                return bool(await redis.exists(key))

            await eventually(result_kept, what="the job's result stored")
            ttl_ms = await redis.pttl(key)
            assert 0 < ttl_ms <= KEEP * 1000
        await eventually(lambda: _gone(redis, key), timeout=KEEP + 3, what="the result expired")


async def _gone(redis: ArqRedis, key: str) -> bool:
    return not await redis.exists(key)


def _bytes(value: str) -> int:
    units = {"kb": 1000, "k": 1000, "mb": 1000**2, "m": 1000**2, "gb": 1000**3, "g": 1000**3}
    units |= {"ki": 1024, "mi": 1024**2, "gi": 1024**3}
    lowered = value.lower()
    for unit in sorted(units, key=len, reverse=True):
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * units[unit])
    return int(lowered)


class TestClusterRedis:
    def test_memory_is_capped_below_the_pod_limit_and_evicts_expiring_keys(self) -> None:
        redis = only_container(load_manifests().named("StatefulSet", "expiration-redis"))
        args = [str(arg) for arg in redis["args"]]
        options = dict(zip(args[1::2], args[2::2], strict=False))
        assert args[0] == "redis-server"
        cap = _bytes(options["--maxmemory"])
        limit = _bytes(redis["resources"]["limits"]["memory"])
        # Headroom for Redis' own overhead and the fork of an append-only rewrite.
        assert 0 < cap <= limit * 0.7
        # Only keys with a TTL go (results, whose TTL is the shortest, first): arq's queue
        # itself never does.
        assert options["--maxmemory-policy"] == "volatile-ttl"
