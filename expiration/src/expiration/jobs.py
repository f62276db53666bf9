"""The expiration job and its scheduling: one arq job per order, due at its `expiresAt`.

Once-only comes from two things together: the job id is derived from the order, so a
repeated `order:created` finds the job still queued, or its kept result once it has run,
and schedules nothing; and the event's message id is derived from the order, so a job that
runs twice (arq runs it again when its worker died between the PubAck and recording the
end) adds nothing to the stream inside the stream's 2-minute duplicate window. A running
job's lock outlives its time limit by only 10 s, so with a live worker that re-run comes
inside the window.

The job carries the trace context of the `order:created` delivery that scheduled it (its
`trace` argument), so the `expiration:complete` it publishes, 15 minutes later, is in the
order's trace.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from arq import ArqRedis, Retry
from opentelemetry.trace import SpanKind

from expiration.config import SERVICE, Settings
from expiration.worker import EXPIRE_ORDER
from ticketing_common.events import EventBus, ExpirationCompleteEvent
from ticketing_common.events.listener import backoff_delay
from ticketing_common.metrics import Metrics
from ticketing_common.tracing import context_from, current_context_headers, tracer

logger = logging.getLogger("expiration")


class JobMetrics:
    """The worker's counters of expiration jobs (in `ctx["job_metrics"]`)."""

    def __init__(self, metrics: Metrics) -> None:
        self.scheduled = metrics.counter(
            "ticketing_expiration_jobs_scheduled_total",
            "Expiration jobs queued for an order:created",
        )
        self.already_scheduled = metrics.counter(
            "ticketing_expiration_jobs_already_scheduled_total",
            "order:created events whose order's job was already queued or had run",
        )
        self.fired = metrics.counter(
            "ticketing_expiration_jobs_fired_total",
            "Expiration jobs that published expiration:complete",
        )
        self.retried = metrics.counter(
            "ticketing_expiration_jobs_retried_total",
            "Expiration job tries that could not publish and were deferred",
        )


def expiration_job_id(order_id: str) -> str:
    return f"expire:{order_id}"


async def schedule_expiration(pool: ArqRedis, order_id: str, expires_at: datetime) -> bool:
    """Queue the order's job for `expires_at` (at once when that has passed).

    False when the order's job is already queued, or has run and its result is kept.
    """
    # A due time in the past is not passed on: arq keeps a job for a day past its due
    # time, so a long-past one would get a negative lifetime that Redis refuses.
    defer_until = expires_at if expires_at > datetime.now(UTC) else None
    job = await pool.enqueue_job(
        EXPIRE_ORDER,
        order_id,
        trace=current_context_headers() or None,
        _job_id=expiration_job_id(order_id),
        _defer_until=defer_until,
    )
    return job is not None


async def expire_order(
    ctx: dict[str, Any], order_id: str, trace: dict[str, str] | None = None
) -> None:
    """arq job: publish `expiration:complete` for the order; any failure is a retry.
    `trace` is the context it was scheduled in (jobs queued before it existed have none)."""
    with tracer(SERVICE).start_as_current_span(
        "expiration job",
        context=context_from(trace),
        kind=SpanKind.CONSUMER,
        attributes={"ticketing.order_id": order_id, "ticketing.job_try": ctx.get("job_try", 1)},
    ):
        await _expire(ctx, order_id)


async def _expire(ctx: dict[str, Any], order_id: str) -> None:
    bus: EventBus = ctx["bus"]
    settings: Settings = ctx["settings"]
    metrics: JobMetrics | None = ctx.get("job_metrics")
    try:
        async with asyncio.timeout(settings.PUBLISH_TIMEOUT_SECONDS + 5.0):
            await bus.publish(ExpirationCompleteEvent(order_id=order_id))
    except Exception as exc:
        if metrics is not None:
            metrics.retried.inc()
        delay = backoff_delay(ctx["job_try"], settings)
        logger.warning(
            "expiration:complete for order %s not published (%r); try %d again in %.1fs",
            order_id,
            exc,
            ctx["job_try"],
            delay,
        )
        raise Retry(defer=delay) from exc
    if metrics is not None:
        metrics.fired.inc()
    logger.info("order %s expired: published expiration:complete", order_id)
