"""One service's connection to JetStream: publishing with retries, listeners, readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from ticketing_common.config import EventSettings
from ticketing_common.events.listener import Listener
from ticketing_common.events.payloads import EventPayload
from ticketing_common.events.stream import STREAM_NAME, durable_name, ensure_stream
from ticketing_common.metrics import Metrics
from ticketing_common.tracing import context_from, tracer

logger = logging.getLogger("ticketing.events")

_RETRYABLE = (nats.errors.Error, asyncio.TimeoutError, OSError)
# What the server answers the loser of replicas creating one durable consumer at once:
# each asks for its own delivery inbox, so the second create differs from the first.
_CONSUMER_TAKEN = {10013, 10105, 10148}
_CONSUMER_CREATE_TRIES = 5


class PublishError(RuntimeError):
    """A publish that did not get a PubAck within the publish timeout."""


class EventBus:
    """A service's NATS connection, its publishes and its durable consumers.

    Open it in the lifespan: `await bus.connect()`, `bus.add_listener(...)` for each
    listener, `await bus.start_listeners(recreate=...)` before the service reports
    ready, `await bus.close()` after. Publishes and deliveries are counted in `metrics`
    (the app's; a private one when None) and traced.
    """

    def __init__(
        self, service: str, settings: EventSettings, metrics: Metrics | None = None
    ) -> None:
        self.service = service
        self.settings = settings
        self.metrics = metrics or Metrics(service)
        self.tracer = tracer(service)
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._listeners: list[Listener[Any]] = []
        self._started = False
        self._closing = False

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("EventBus is not connected")
        return self._js

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("EventBus is not connected")
        return self._nc

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect (retrying for `timeout` seconds) and ensure the stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                self._nc = await nats.connect(
                    self.settings.NATS_URL,
                    name=self.service,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                break
            except _RETRYABLE as exc:
                if loop.time() > deadline:
                    raise RuntimeError(
                        f"{self.service}: NATS at {self.settings.NATS_URL} unreachable "
                        f"for {timeout:.0f}s"
                    ) from exc
                logger.warning("NATS not reachable yet (%s); retrying", exc)
                await asyncio.sleep(1)
        self._js = self._nc.jetstream()
        await self._retry(lambda: ensure_stream(self.js, self.settings), "ensure stream")

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except _RETRYABLE:
                # Draining needs the server; when it is gone, just close.
                await self._nc.close()
        self._started = False

    # Publishing ---------------------------------------------------------------------

    async def publish(self, payload: EventPayload) -> PubAck:
        """Publish `payload` on its subject with its message id; awaited and retried."""
        return await self.publish_raw(
            payload.subject.value, payload.to_json(), payload.message_id()
        )

    async def publish_raw(
        self, subject: str, data: bytes, msg_id: str, trace: Mapping[str, str] | None = None
    ) -> PubAck:
        """Publish and wait for the PubAck, retrying through reconnects for up to
        PUBLISH_TIMEOUT_SECONDS; the same `msg_id` makes a retried publish a duplicate
        the stream drops. The publish span is a child of the context `trace` carries (an
        outbox entry's, stored when its write was made), else of the current one, and
        travels in the message's `traceparent` header."""
        with self.tracer.start_as_current_span(
            f"{subject} publish",
            context=context_from(trace),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "messaging.message.id": msg_id,
            },
        ):
            headers = {"Nats-Msg-Id": msg_id}
            propagate.inject(headers)

            async def attempt() -> PubAck:
                return await self.js.publish(subject, data, timeout=2.0, headers=headers)

            ack: PubAck = await self._retry(attempt, f"publish {msg_id}")
        self.metrics.published(subject)
        return ack

    async def _retry(self, action: Any, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.PUBLISH_TIMEOUT_SECONDS
        delay = 0.1
        while True:
            try:
                return await action()
            except _RETRYABLE as exc:
                if self._nc is None or self._nc.is_closed:
                    raise PublishError(f"{what}: connection closed") from exc
                if loop.time() + delay > deadline:
                    raise PublishError(f"{what}: no PubAck ({exc!r})") from exc
                logger.info("%s failed (%r); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # Listening ----------------------------------------------------------------------

    def add_listener(self, listener: Listener[Any]) -> None:
        if self._started:
            raise RuntimeError("add listeners before start_listeners()")
        names = {durable_name(self.service, item.subject) for item in self._listeners}
        if durable_name(self.service, listener.subject) in names:
            raise ValueError(f"{self.service} already listens to {listener.subject}")
        self._listeners.append(listener)

    def consumer_names(self) -> list[str]:
        return [durable_name(self.service, listener.subject) for listener in self._listeners]

    async def start_listeners(self, *, recreate: bool = False) -> None:
        """Create (or bind to) each listener's durable consumer and subscribe.

        `recreate` deletes the consumers first, so they replay the stream from the
        start: with an in-memory database the service rebuilds its replicas.
        """
        for listener in self._listeners:
            name = durable_name(self.service, listener.subject)
            if recreate:
                try:
                    await self.js.delete_consumer(STREAM_NAME, name)
                    logger.info("deleted consumer %s to replay the stream", name)
                except NotFoundError:
                    pass
            config = ConsumerConfig(
                durable_name=name,
                deliver_group=name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30.0,
                max_deliver=-1,
                max_ack_pending=1000,
                filter_subject=listener.subject.value,
            )
            await self._subscribe(listener, name, config)
        self._started = True

    async def _subscribe(self, listener: Listener[Any], name: str, config: ConsumerConfig) -> None:
        """Bind to the consumer `name`, creating it when missing. Replicas starting together
        may race to create it: the loser binds to the winner's on its next try."""
        for attempt in range(_CONSUMER_CREATE_TRIES):
            try:
                await self.js.subscribe(
                    listener.subject.value,
                    queue=name,
                    durable=name,
                    stream=STREAM_NAME,
                    config=config,
                    manual_ack=True,
                    cb=listener.bind(self),
                )
                return
            except BadRequestError as exc:
                if exc.err_code not in _CONSUMER_TAKEN or attempt + 1 == _CONSUMER_CREATE_TRIES:
                    raise
                logger.info("consumer %s was created by another replica; binding to it", name)
                await asyncio.sleep(0.05 * (attempt + 1))

    async def ready(self) -> bool:
        """Connected, and every declared consumer exists on the server."""
        if not self._started or self._nc is None or not self._nc.is_connected:
            return False
        try:
            for name in self.consumer_names():
                await self.js.consumer_info(STREAM_NAME, name, timeout=2.0)
        except _RETRYABLE:
            return False
        return True

    # Connection callbacks -------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        logger.warning("%s: NATS error: %r", self.service, exc)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        logger.warning("%s: disconnected from NATS", self.service)

    async def _on_reconnected(self) -> None:
        logger.info("%s: reconnected to NATS", self.service)
