"""The outbox: a change and its events leave in one single-document write.

Each record document may hold an `outbox` array of events not yet acknowledged by the
stream. A write appends its events in the same `insert_one` / `find_one_and_update` as
the change; after the PubAck each event is pulled from the array. Whatever a crash or a
broker outage leaves behind is published again (same message id, so the stream drops
duplicates) at start and every OUTBOX_INTERVAL_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from pymongo import ReturnDocument

from ticketing_common.events.bus import EventBus, PublishError
from ticketing_common.events.payloads import EventPayload
from ticketing_common.mongo import Collection, Document

logger = logging.getLogger("ticketing.outbox")

OUTBOX_FIELD = "outbox"
# Documents with events still to publish; served by a sparse index on `outbox.msgId`, so
# the periodic re-publisher reads only those, not the whole collection.
PENDING = {f"{OUTBOX_FIELD}.msgId": {"$exists": True}}


def outbox_entry(payload: EventPayload) -> Document:
    return {
        "subject": payload.subject.value,
        "data": payload.to_json().decode(),
        "msgId": payload.message_id(),
    }


def without_outbox(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key != OUTBOX_FIELD}


class Outbox:
    """Writes changes together with their events, and publishes what writes left."""

    def __init__(self, bus: EventBus, collections: Iterable[Collection]) -> None:
        self.bus = bus
        self.collections = list(collections)
        self._task: asyncio.Task[None] | None = None

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
                await self.bus.publish_raw(entry["subject"], entry["data"].encode(), entry["msgId"])
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
            for doc in leftovers:
                total += await self.flush(collection, doc)
        if total:
            logger.info("re-published %d outbox leftovers", total)
        return total

    def start(self, interval: float) -> None:
        """Re-publish leftovers now and then every `interval` seconds, in the background."""
        self._task = asyncio.create_task(self._run(interval), name="outbox-republisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.republish()
            except Exception:
                logger.exception("outbox re-publisher failed; trying again later")
            await asyncio.sleep(interval)
