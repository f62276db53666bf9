"""An in-memory database that gives the event loop away around every call.

mongomock answers inside the calling coroutine without ever suspending it, so with the
in-memory database a "read, check, then write" would look atomic. A real driver waits on
the network at every call; these wrappers give the event loop away around every database
call the same way, so concurrent requests interleave as they would on MongoDB.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ticketing_common.mongo import Mongo, connect_mongo


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
    return Mongo(client=mongo.client, db=YieldingDatabase(mongo.db), in_memory=True)
