"""Replicas of another service's records, kept in step by its events.

A replica's `version` is its source's: a created-event stores it once, and each later
event applies only on top of the version just before it, whatever order events arrive in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError

from ticketing_common.mongo import Collection, Document

T = TypeVar("T")

# The first pause while waiting for a replica; each next one doubles.
_FIRST_PAUSE_SECONDS = 0.002


async def arriving(lookup: Callable[[], Awaitable[T | None]], within: float) -> T | None:
    """What `lookup` finds, looked up again for up to `within` seconds while it finds
    nothing: the event that brings a replica is usually milliseconds behind the answer that
    announced it (a buyer pays the moment orders answered 201, while payments' copy of the
    order is still on its way), so the request waits for it instead of answering 404 and
    being repeated. None when it has not arrived by then."""
    found = await lookup()
    if found is not None or within <= 0:
        return found
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = _FIRST_PAUSE_SECONDS
    while found is None and (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(pause, left))
        pause *= 2
        found = await lookup()
    return found


class ReplicaUpdate(StrEnum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already applied"  # a redelivery or a stale event: ack, no change
    NOT_YET = "not yet"  # the replica or an earlier version is missing: retry later


async def insert_replica(collection: Collection, doc: Document) -> bool:
    """Store a new replica; False when it is already there (a duplicate event)."""
    try:
        await collection.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def apply_in_order(
    collection: Collection, doc_id: Any, version: int, changes: Document
) -> ReplicaUpdate:
    """Set `changes` and `version` on the replica only if it is at `version - 1`.

    One conditional update; when it matches nothing, the replica's version says whether
    the event came too early or was already applied.
    """
    while True:
        updated = await collection.find_one_and_update(
            {"_id": doc_id, "version": version - 1},
            {"$set": {**changes, "version": version}},
        )
        if updated is not None:
            return ReplicaUpdate.APPLIED
        current: Document | None = await collection.find_one({"_id": doc_id}, {"version": 1})
        if current is None or current["version"] < version - 1:
            return ReplicaUpdate.NOT_YET
        if current["version"] >= version:
            return ReplicaUpdate.ALREADY_APPLIED
        # It reached version - 1 between the update and the read: apply now.
