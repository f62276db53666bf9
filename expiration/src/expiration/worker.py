"""The arq worker: `arq expiration.worker.WorkerSettings` or `python -m expiration`.

Startup connects the event bus and starts the `order:created` listener, which enqueues
through the worker's own Redis pool; `arq --check expiration.worker.WorkerSettings` is the
liveness probe (the worker refreshes its health key every HEALTH_CHECK_INTERVAL seconds).
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

from expiration.config import Settings, get_settings
from expiration.events.listeners import OrderCreatedListener
from expiration.jobs import EXPIRE_ORDER, KEEP_RESULT, MAX_TRIES, expire_order, job_timeout
from ticketing_common.events import EventBus

logger = logging.getLogger("expiration")

SERVICE = "expiration"
HEALTH_CHECK_INTERVAL = 5  # seconds; the key lives one second longer
JOB_COMPLETION_WAIT = 20  # seconds; within k8s' default 30 s grace period
CONNECT_RETRY_SECONDS = 30  # SPEC §5: retry broker and database connections at start


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = CONNECT_RETRY_SECONDS
    settings.conn_retry_delay = 1
    return settings


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    bus = EventBus(SERVICE, settings)
    ctx["bus"] = bus
    await bus.connect()
    bus.add_listener(OrderCreatedListener(ctx["redis"]))
    await bus.start_listeners()
    logger.info("expiration worker listening for order:created")


async def shutdown(ctx: dict[str, Any]) -> None:
    bus: EventBus | None = ctx.pop("bus", None)
    if bus is not None:
        await bus.close()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq's worker settings for `settings` (arq takes a dict or a class alike)."""
    return {
        "functions": [
            func(
                expire_order,
                name=EXPIRE_ORDER,
                keep_result=KEEP_RESULT,
                timeout=job_timeout(settings),
                max_tries=MAX_TRIES,
            )
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings.REDIS_URL),
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        # On SIGTERM stop taking jobs and let running ones finish (a try takes at most
        # job_timeout) before they are cancelled and left to run again.
        "job_completion_wait": JOB_COMPLETION_WAIT,
        # Only expire_order's successes are kept (KEEP_RESULT): a job that gave up keeps
        # nothing, so a later `order:created` for its order schedules it again.
        "keep_result": 0,
        "ctx": {"settings": settings},
    }


def __getattr__(name: str) -> Any:
    # `arq expiration.worker.WorkerSettings` looks the settings up by name: build them from
    # the environment then, not at import, so a missing variable is reported in one line
    # and importing this module needs no environment.
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
