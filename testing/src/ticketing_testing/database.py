"""An in-memory database that gives the event loop away around every call.

mongomock answers inside the calling coroutine without ever suspending it, so with the
in-memory database a "read, check, then write" would look atomic. A real driver waits on
the network at every call; these wrappers give the event loop away around every database
call the same way, so concurrent requests interleave as they would on MongoDB.

Each is a database connector for a service's `create_app(settings, connect=...)`.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from ticketing_common.mongo import Database, Mongo, connect_mongo


class YieldingCollection:
    """A collection whose coroutine methods yield to the event loop before and after."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await attr(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return call


class YieldingDatabase:
    """A database whose collections are `YieldingCollection`s."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if inspect.ismethod(attr) or name.startswith("_"):
            return attr
        return YieldingCollection(attr)

    def __getitem__(self, name: str) -> YieldingCollection:
        return YieldingCollection(self._inner[name])


async def connect_yielding(uri: str, default_db: str, timeout: float = 30.0) -> Mongo:
    """`connect_mongo` for an in-memory `uri`, its database wrapped in `YieldingDatabase`:
    pass it as `create_app(settings, connect=connect_yielding)`."""
    mongo = await connect_mongo(uri, default_db, timeout)
    # A stand-in with the database's call shapes, seen as one where the services take it.
    return Mongo(client=mongo.client, db=cast(Database, YieldingDatabase(mongo.db)), in_memory=True)


class SecondReplicaMongo(Mongo):
    """Another process's view of a database someone else opened and will close."""

    async def ping(self) -> bool:
        await self.db.list_collection_names()
        return True

    async def close(self) -> None:
        return None


class SharedDatabase:
    """One yielding in-memory database for several apps of a service, like replicas of the
    service on one MongoDB: pass `connect` to each one's `create_app`. The first app opens
    it and creates the durable consumers afresh; the others join them as further members
    of each queue group (and leave closing the database to the first)."""

    def __init__(self) -> None:
        self._first: Mongo | None = None

    async def connect(self, uri: str, default_db: str) -> Mongo:
        if self._first is None:
            self._first = await connect_yielding(uri, default_db)
            return self._first
        return SecondReplicaMongo(self._first.client, self._first.db, in_memory=False)
