"""The outbox: a change and its events leave in one single-document write.

Each record document may hold an `outbox` array of events not yet acknowledged by the
stream. A write appends its events in the same `insert_one` / `find_one_and_update` as
the change; after the PubAck each event is pulled from the array. Whatever a crash or a
broker outage leaves behind is published again (same message id, so the stream drops
duplicates) at start and every OUTBOX_INTERVAL_SECONDS.

Each entry also keeps when it was written (`at`, for the backlog's age) and the trace
context of the write (`trace`, its `traceparent`), so a re-published event stays in the
trace of the request that made it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from pymongo import ReturnDocument

from ticketing_common.events.bus import EventBus, PublishError
from ticketing_common.events.payloads import EventPayload
from ticketing_common.mongo import Collection, Document, as_utc, utcnow
from ticketing_common.periodic import Periodic
from ticketing_common.tracing import current_context_headers

logger = logging.getLogger("ticketing.outbox")

OUTBOX_FIELD = "outbox"
# Documents with events still to publish; served by a sparse index on `outbox.msgId`, so
# the periodic re-publisher reads only those, not the whole collection.
PENDING = {f"{OUTBOX_FIELD}.msgId": {"$exists": True}}


def outbox_entry(payload: EventPayload) -> Document:
    entry: Document = {
        "subject": payload.subject.value,
        "data": payload.to_json().decode(),
        "msgId": payload.message_id(),
        "at": utcnow(),
    }
    trace = current_context_headers()
    if trace:
        entry["trace"] = trace
    return entry


def without_outbox(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key != OUTBOX_FIELD}


class Outbox:
    """Writes changes together with their events, and publishes what writes left."""

    def __init__(self, bus: EventBus, collections: Iterable[Collection]) -> None:
        self.bus = bus
        self.collections = list(collections)
        self._loop: Periodic | None = None
        bus.metrics.outbox_watch(collection.name for collection in self.collections)

    async def create_indexes(self) -> None:
        for collection in self.collections:
            await collection.create_index(f"{OUTBOX_FIELD}.msgId", sparse=True)

    async def insert(
        self, collection: Collection, doc: Document, events: Iterable[EventPayload]
    ) -> Document:
        """Insert `doc` with `events` in its outbox, then publish them."""
        stored = {**doc, OUTBOX_FIELD: [outbox_entry(event) for event in events]}
        await collection.insert_one(stored)
        await self.flush(collection, stored)
        return without_outbox(stored)

    async def update(
        self,
        collection: Collection,
        query: Document,
        update: Document,
        events: Iterable[EventPayload],
    ) -> Document | None:
        """Apply `update` to the document matching `query` and append `events` to its
        outbox in the same write; publish them if it matched. None when nothing matched
        (nothing written, nothing published)."""
        entries = [outbox_entry(event) for event in events]
        if entries:
            push = {**update.get("$push", {}), OUTBOX_FIELD: {"$each": entries}}
            update = {**update, "$push": push}
        doc: Document | None = await collection.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            return None
        if entries:
            await self.flush(collection, doc)
        return without_outbox(doc)

    async def flush(self, collection: Collection, doc: Document) -> int:
        """Publish `doc`'s pending events in order; each is cleared after its PubAck.
        A failure leaves the rest for the re-publisher and is only logged: the change
        itself is already stored."""
        published = 0
        for entry in doc.get(OUTBOX_FIELD) or []:
            try:
                await self.bus.publish_raw(
                    entry["subject"], entry["data"].encode(), entry["msgId"], entry.get("trace")
                )
            except PublishError as exc:
                logger.warning("left %s in the outbox for later: %s", entry["msgId"], exc)
                break
            await collection.update_one(
                {"_id": doc["_id"]}, {"$pull": {OUTBOX_FIELD: {"msgId": entry["msgId"]}}}
            )
            published += 1
        return published

    async def republish(self) -> int:
        """Publish every leftover of every collection once; the count published."""
        total = 0
        for collection in self.collections:
            leftovers: list[Document] = await collection.find(PENDING).to_list(None)
            # The gauges first show what is pending (a publish may wait out a broker
            # outage for a while), then what this round could not publish.
            self._seen(collection, [(doc, 0) for doc in leftovers])
            published = [(doc, await self.flush(collection, doc)) for doc in leftovers]
            total += sum(count for _, count in published)
            self._seen(collection, published)
        if total:
            logger.info("re-published %d outbox leftovers", total)
        return total

    def _seen(self, collection: Collection, docs: list[tuple[Document, int]]) -> None:
        """Record the backlog of `docs` (each with how many of its entries were published
        since it was read) and the age of its oldest entry (one written before `at` was
        recorded counts from now)."""
        backlog, oldest = 0, None
        for doc, published in docs:
            for entry in (doc.get(OUTBOX_FIELD) or [])[published:]:
                backlog += 1
                at = entry.get("at")
                written = as_utc(at).timestamp() if at is not None else time.time()
                oldest = written if oldest is None else min(oldest, written)
        self.bus.metrics.outbox_seen(collection.name, backlog, oldest)

    def start(self, interval: float) -> None:
        """Re-publish leftovers now and then every `interval` seconds, in the background."""
        self._loop = Periodic("outbox-republisher", self.republish, interval)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
