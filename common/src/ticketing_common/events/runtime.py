"""A service's bus, outbox and listeners for the length of its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from ticketing_common.config import EventSettings
from ticketing_common.events.bus import EventBus
from ticketing_common.events.listener import Listener
from ticketing_common.events.outbox import Outbox
from ticketing_common.metrics import Metrics
from ticketing_common.mongo import Collection, Mongo


class EventRuntime:
    """A service's bus, outbox and listeners for one lifespan (see `event_runtime`)."""

    def __init__(self, bus: EventBus, outbox: Outbox, settings: EventSettings, replay: bool):
        self.bus = bus
        self.outbox = outbox
        self.settings = settings
        self.replay = replay

    def listen(self, *listeners: Listener[Any]) -> None:
        for listener in listeners:
            self.bus.add_listener(listener)

    async def start(self) -> None:
        """Publish what earlier runs left in the outbox, keep doing so in the background,
        and put every consumer in place (before `/readyz` can say ready, so no event
        published earlier is missed). With an in-memory database the consumers are
        recreated and replay the stream to rebuild the service's replicas."""
        await self.outbox.create_indexes()
        await self.outbox.republish()
        self.outbox.start(self.settings.OUTBOX_INTERVAL_SECONDS)
        await self.bus.start_listeners(recreate=self.replay)


@asynccontextmanager
async def event_runtime(
    service: str,
    settings: EventSettings,
    mongo: Mongo,
    outbox_collections: Iterable[Collection],
    metrics: Metrics | None = None,
) -> AsyncIterator[EventRuntime]:
    """Connect `service` to JetStream for the body of the block, then stop it all; the
    events and the outbox are counted in `metrics` (pass the app's).

    Inside: build repositories on `runtime.outbox`, `runtime.listen(...)` the listeners,
    then `await runtime.start()`.
    """
    bus = EventBus(service, settings, metrics)
    outbox = Outbox(bus, outbox_collections)
    try:
        await bus.connect()
        yield EventRuntime(bus, outbox, settings, replay=mongo.in_memory)
    finally:
        await outbox.stop()
        await bus.close()
