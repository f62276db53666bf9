"""MongoDB access shared by the services.

`connect_mongo` gives PyMongo's `AsyncMongoClient` for `mongodb://` URIs and an
in-memory database for `memory://` (mongomock-motor over
`ticketing_common.memory_database`, from the `ticketing-common[memory]` extra: installed
for development and the tests, not in the services' images). Services use only calls with
the same shape in both drivers: find, find_one, insert_one, update_one,
find_one_and_update, count_documents, create_index and `to_list`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ticketing_common.errors import NotFoundError
from ticketing_common.ids import is_object_id as is_object_id

logger = logging.getLogger("ticketing.mongo")

Document: TypeAlias = dict[str, Any]
# PyMongo's async types. The in-memory driver has the same call shapes for the calls the
# services make (see above) and is cast to them once, in `connect_mongo`.
Client: TypeAlias = AsyncMongoClient[Document]
Database: TypeAlias = AsyncDatabase[Document]
Collection: TypeAlias = AsyncCollection[Document]

MEMORY_SCHEME = "memory://"


@dataclass
class Mongo:
    """A connected client and the service's database."""

    client: Client
    db: Database
    in_memory: bool

    async def ping(self) -> bool:
        try:
            if self.in_memory:
                await self.db.list_collection_names()
            else:
                await self.client.admin.command("ping")
        except Exception:
            logger.warning("database ping failed", exc_info=True)
            return False
        return True

    async def close(self) -> None:
        if not self.in_memory:
            await self.client.close()


async def connect_mongo(uri: str, default_db: str, timeout: float = 30.0) -> Mongo:
    """Connect to `uri`, retrying for `timeout` seconds (a database still starting)."""
    if uri.startswith(MEMORY_SCHEME):
        try:
            from mongomock_motor import AsyncMongoMockClient

            from ticketing_common.memory_database import IndexedMongoClient
        except ImportError:
            raise RuntimeError(
                f"MONGO_URI={uri} needs the in-memory database, which is not installed: "
                "install ticketing-common[memory] (development and tests only), or use a "
                "mongodb:// URI"
            ) from None

        logger.warning(
            "MONGO_URI=memory://: using an in-memory database; nothing is kept when the "
            "process stops (for development and tests only, one process per service)"
        )
        name = uri[len(MEMORY_SCHEME) :].strip("/") or default_db
        # mongomock, with lookups by `_id` and indexed fields that do not scan the whole
        # collection (ticketing_common.memory_database; docs/benchmarks.md).
        # mongomock-motor is untyped and shares no base class with PyMongo; this is the one
        # place its client is seen as PyMongo's (the calls the services make behave alike).
        memory_client = cast(
            Client, AsyncMongoMockClient(mock_mongo_client=IndexedMongoClient(tz_aware=True))
        )
        return Mongo(client=memory_client, db=memory_client[name], in_memory=True)

    client: Client = AsyncMongoClient(uri, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=5000)
    mongo = Mongo(client=client, db=client.get_default_database(default_db), in_memory=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while not await mongo.ping():
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"database at {uri!r} unreachable for {timeout:.0f}s")
        await asyncio.sleep(1)
    return mongo


# How a service opens its database, called as `connect(MONGO_URI, default_db)`: the
# services' `create_app(settings, connect=...)` takes one, `connect_mongo` by default.
MongoConnector: TypeAlias = Callable[[str, str], Awaitable[Mongo]]


def as_utc(value: datetime) -> datetime:
    """Datetimes read back from either driver as aware UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    # BSON keeps milliseconds; trimming here makes a value equal to what is read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def path_object_id(value: str) -> ObjectId:
    """An id from a URL path; a malformed one is 404, like an unknown one."""
    if not is_object_id(value):
        raise NotFoundError()
    return ObjectId(value)


def at_version(doc_id: ObjectId | str, version: int, condition: Document | None = None) -> Document:
    """The query of an optimistic-concurrency write: the document only while it is still at
    the `version` it was read at (and matches `condition`). A write that stores a record's
    next state (its version set by the record) or bumps it (`update_versioned`) then matches
    nothing once another write moved the document on: read again and decide again."""
    return {"_id": ObjectId(doc_id), "version": version, **(condition or {})}


async def update_versioned(
    collection: Collection,
    doc_id: ObjectId | str,
    expected_version: int,
    update: Document,
) -> Document | None:
    """Apply `update` only if the document is still at `expected_version`, bumping it.

    Returns the updated document, or None when the version no longer matches (a lost
    race) or the document is gone. Writes that publish use `at_version` with the outbox.
    """
    change = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
    result: Document | None = await collection.find_one_and_update(
        at_version(doc_id, expected_version), change, return_document=ReturnDocument.AFTER
    )
    return result
