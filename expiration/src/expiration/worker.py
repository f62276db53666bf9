"""The arq worker: `arq expiration.worker.WorkerSettings` or `python -m expiration`.

Startup connects the event bus and starts the `order:created` listener, which enqueues
through the worker's own Redis pool; `arq --check expiration.worker.WorkerSettings` is the
liveness probe (the worker refreshes its health key every HEALTH_CHECK_INTERVAL seconds; each
worker has its own, named by WORKER_NAME, so the probe of one sees that one).

The probe imports this module every period, so it imports only arq and the settings: the
job and the listener (and through them NATS, pydantic models and the shared package's
web stack) are imported when a worker starts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from arq.connections import RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix

from expiration.config import SERVICE, Settings, get_settings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ticketing_common.events import EventBus

logger = logging.getLogger("expiration")

# The job, registered (and so enqueued) under its import path.
EXPIRE_ORDER = "expiration.jobs.expire_order"
HEALTH_CHECK_INTERVAL = 5  # seconds; the key lives one second longer
JOB_COMPLETION_WAIT = 20  # seconds; within k8s' default 30 s grace period
CONNECT_RETRY_SECONDS = 30  # a service retries its broker and database for this long at start

# A failed publish is retried with back-off (EVENT_RETRY_MIN/MAX_SECONDS) for as long as arq
# keeps the job, which is a day past its due time: an order must expire once the broker is
# back. 5000 tries at the 30 s cap outlast that day.
MAX_TRIES = 5000


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = CONNECT_RETRY_SECONDS
    settings.conn_retry_delay = 1
    return settings


def job_timeout(settings: Settings) -> float:
    """A try's time limit: the job gives a publish PUBLISH_TIMEOUT_SECONDS + 5 s, and this
    leaves a margin over that. arq locks a running job for this plus 10 s, so a job whose
    worker died is run again well inside the stream's 2-minute duplicate window."""
    return settings.PUBLISH_TIMEOUT_SECONDS + 15.0


def ensure_logging() -> None:
    """Give the service's own loggers a handler when nothing configured logging.

    The `arq` command configures only arq's logger; without this the listener's, the
    job's and the event layer's INFO lines would be dropped. `python -m expiration`
    configures the root logger instead, and then this does nothing.
    """
    from ticketing_common.tracing import log_handler

    if logging.getLogger().handlers:
        return
    handler = log_handler()
    for name in ("expiration", "ticketing"):
        named = logging.getLogger(name)
        if not named.handlers:
            named.addHandler(handler)
            named.setLevel(logging.INFO)


async def startup(ctx: dict[str, Any]) -> None:
    from expiration.events.listeners import OrderCreatedListener
    from expiration.jobs import JobMetrics
    from ticketing_common.events import EventBus
    from ticketing_common.metrics import Metrics
    from ticketing_common.tracing import configure_tracing

    ensure_logging()
    configure_tracing(SERVICE)
    settings: Settings = ctx["settings"]
    metrics = Metrics(SERVICE)
    ctx["job_metrics"] = job_metrics = JobMetrics(metrics)
    if settings.METRICS_PORT is not None:
        ctx["metrics_server"] = metrics.serve(settings.METRICS_PORT)
        logger.info("metrics on port %d", settings.METRICS_PORT)
    bus = EventBus(SERVICE, settings, metrics)
    ctx["bus"] = bus
    await bus.connect()
    bus.add_listener(OrderCreatedListener(ctx["redis"], job_metrics))
    await bus.start_listeners()
    logger.info("expiration worker listening for order:created")


async def shutdown(ctx: dict[str, Any]) -> None:
    bus: EventBus | None = ctx.pop("bus", None)
    if bus is not None:
        await bus.close()
    server: WSGIServer | None = ctx.pop("metrics_server", None)
    if server is not None:
        server.shutdown()
        server.server_close()


def health_check_key(settings: Settings) -> str:
    """The Redis key this worker's health record is kept under: arq's own, named for the
    worker."""
    return f"{default_queue_name}{health_check_key_suffix}:{settings.WORKER_NAME}"


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq's worker settings for `settings` (arq takes a dict or a class alike)."""
    return {
        # By import path: arq imports it when a worker is created, not for `--check`.
        "functions": [EXPIRE_ORDER],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings.REDIS_URL),
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "health_check_key": health_check_key(settings),
        # On SIGTERM stop taking jobs and let running ones finish (a try takes at most
        # job_timeout) before they are cancelled and left to run again.
        "job_completion_wait": JOB_COMPLETION_WAIT,
        "job_timeout": job_timeout(settings),
        "max_tries": MAX_TRIES,
        # While a job's result is kept, an `order:created` for the same order (a
        # redelivery, or orders re-publishing its outbox) finds it and schedules nothing.
        "keep_result": settings.KEEP_RESULT_SECONDS,
        "ctx": {"settings": settings},
    }


def __getattr__(name: str) -> Any:
    # `arq expiration.worker.WorkerSettings` looks the settings up by name: build them from
    # the environment then, not at import, so a missing variable is reported in one line
    # and importing this module needs no environment.
    if name == "WorkerSettings":
        return worker_settings(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
