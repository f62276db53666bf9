"""Listener base class: validated payloads, ack after success, back-off, give-up, logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from ticketing_common.config import EventSettings
from ticketing_common.events.payloads import EventPayload
from ticketing_common.events.stream import durable_name
from ticketing_common.events.subjects import Subjects
from ticketing_common.metrics import ListenerCounters, Metrics
from ticketing_common.tracing import context_from

logger = logging.getLogger("ticketing.events")

# Every consumer's ack wait is 30 s (docs/SPEC.md §4). While a handler runs longer than
# this, the base tells JetStream it is still at work (`msg.in_progress()`, which restarts
# the ack wait), so the message is not redelivered behind it (a refund can make four
# 20-second Stripe calls).
PROGRESS_INTERVAL_SECONDS = 10.0

E = TypeVar("E", bound=EventPayload)


class RetryLater(Exception):
    """Raise from `on_message` when the event cannot be applied yet (a replica or an
    earlier version is missing): the message is redelivered after the back-off."""


def backoff_delay(deliveries: int, settings: EventSettings) -> float:
    """Delay before redelivery after the `deliveries`-th failed delivery: doubling from
    the minimum up to the maximum."""
    exponent = min(max(deliveries - 1, 0), 30)
    return float(
        min(settings.EVENT_RETRY_MAX_SECONDS, settings.EVENT_RETRY_MIN_SECONDS * 2**exponent)
    )


def retried_for(deliveries: int, settings: EventSettings) -> float:
    """Seconds spent waiting between the first `deliveries` deliveries."""
    return sum(backoff_delay(n, settings) for n in range(1, deliveries))


class ListenerHost(Protocol):
    """What a listener reads off the bus it is bound to (the `EventBus`; a protocol so
    the bus can import this module and not the other way round)."""

    service: str
    settings: EventSettings
    metrics: Metrics
    tracer: trace.Tracer


class Listener(Generic[E]):
    """Handle one subject for one service.

    Subclasses set `payload_type` (its class-level `subject` is the listener's subject)
    and implement `on_message`. The base validates the payload (an invalid one is
    terminated at once and logged), acks after `on_message` returns, and on an
    exception naks with back-off (while it runs, `msg.in_progress()` every
    `progress_interval` keeps JetStream from redelivering it); after
    EVENT_GIVE_UP_SECONDS of failed deliveries the message is terminated with an error
    log naming subject, sequence and payload. Each delivery is a CONSUMER span, a child
    of the context in the message's `traceparent` header (so what the handler publishes
    stays in the trace), and is counted: handled, retried or terminated.
    """

    # Set on the class by a subclass, or per instance (`Handler`).
    payload_type: type[EventPayload]
    # How often a running handler tells JetStream it is still at work.
    progress_interval: ClassVar[float] = PROGRESS_INTERVAL_SECONDS

    @property
    def subject(self) -> Subjects:
        return self.payload_type.subject

    async def on_message(self, data: E, msg: Msg) -> None:
        raise NotImplementedError

    def bind(self, bus: ListenerHost) -> Callable[[Msg], Awaitable[None]]:
        durable = durable_name(bus.service, self.subject)
        counters = bus.metrics.listener(self.subject.value, durable)
        name = f"{self.subject} process"
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": self.subject.value,
            "messaging.consumer.group.name": durable,
        }

        async def callback(msg: Msg) -> None:
            with bus.tracer.start_as_current_span(
                name,
                context=context_from(msg.headers),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            ) as span:
                if span.is_recording():
                    meta = msg.metadata
                    span.set_attribute("messaging.nats.sequence", meta.sequence.stream)
                    span.set_attribute("messaging.nats.delivered", meta.num_delivered)
                await self._handle(msg, bus.settings, counters)

        return callback

    async def _handle(self, msg: Msg, settings: EventSettings, counters: ListenerCounters) -> None:
        meta = msg.metadata
        seq, deliveries = meta.sequence.stream, meta.num_delivered
        try:
            data = self.payload_type.model_validate_json(msg.data)
        except ValidationError as exc:
            logger.error(
                "terminating invalid %s event seq=%s payload=%r: %s",
                self.subject,
                seq,
                msg.data[:2000],
                exc.errors(include_url=False),
            )
            await msg.term()
            counters.terminated_invalid.inc()
            return
        progress = asyncio.create_task(self._keep_in_progress(msg))
        try:
            try:
                await self.on_message(data, msg)  # type: ignore[arg-type]
            finally:
                await self._stop(progress)
        except Exception as exc:
            await self._failed(msg, exc, seq, deliveries, settings, counters)
            return
        await msg.ack()
        counters.handled.inc()

    async def _keep_in_progress(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            try:
                await msg.in_progress()
            except Exception:
                logger.warning("%s: could not signal progress", self.subject, exc_info=True)

    @staticmethod
    async def _stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _failed(
        self,
        msg: Msg,
        exc: Exception,
        seq: int,
        deliveries: int,
        settings: EventSettings,
        counters: ListenerCounters,
    ) -> None:
        if retried_for(deliveries, settings) >= settings.EVENT_GIVE_UP_SECONDS:
            logger.error(
                "giving up on %s event seq=%s after %d deliveries; payload=%r; last error: %r",
                self.subject,
                seq,
                deliveries,
                msg.data[:2000],
                exc,
                exc_info=not isinstance(exc, RetryLater),
            )
            await msg.term()
            counters.terminated_gave_up.inc()
            return
        if not isinstance(exc, RetryLater):
            # The delivery's span says it failed (RetryLater is the normal wait, not a fault).
            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, repr(exc))
        delay = backoff_delay(deliveries, settings)
        if isinstance(exc, RetryLater):
            logger.info(
                "%s seq=%s not applicable yet (%s); retry in %.1fs", self.subject, seq, exc, delay
            )
        else:
            logger.warning(
                "%s seq=%s handler failed (%r); retry in %.1fs",
                self.subject,
                seq,
                exc,
                delay,
                exc_info=True,
            )
        await msg.nak(delay=delay)
        retried = (
            counters.retried_not_ready if isinstance(exc, RetryLater) else counters.retried_failed
        )
        retried.inc()


class Handler(Listener[E]):
    """A listener whose handling is one call, where a service layer holds the rules:
    `Handler(TicketCreatedEvent, service.ticket_created)`."""

    def __init__(self, payload_type: type[E], handle: Callable[[E], Awaitable[None]]) -> None:
        self.payload_type = payload_type
        self.handle = handle

    async def on_message(self, data: E, msg: Msg) -> None:
        await self.handle(data)
