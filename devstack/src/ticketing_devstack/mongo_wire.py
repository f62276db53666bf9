"""A MongoDB stand-in on TCP: the wire protocol in front of one in-process mongomock store.

No MongoDB server can be installed on the development machines, and `memory://` gives each
process its own database, so several processes of one service cannot share one. This
server speaks enough of the wire protocol (OP_MSG, and OP_QUERY/OP_REPLY for the legacy
handshake) for PyMongo's `AsyncMongoClient` to use it with
`mongodb://HOST:PORT/?directConnection=true`, and answers every command from one
`IndexedMongoClient` (`ticketing_common.memory_database`): the answers are mongomock's.

Commands run one at a time, synchronously on the event loop, so each is atomic as
MongoDB's single-document operations are (two `findAndModify` on one document cannot both
win). Only the commands PyMongo sends for what the services do are implemented; anything
else is answered `CommandNotFound` (code 59), as MongoDB does.

    python -m ticketing_devstack.mongo_wire --host 127.0.0.1 --port 27017
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import logging
import signal
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import bson
import bson.errors
import mongomock
import mongomock.helpers
from bson.codec_options import CodecOptions
from pymongo import ReturnDocument

from ticketing_common.memory_database import IndexedMongoClient, filter_applies

logger = logging.getLogger("ticketing.mongo_wire")

Document = dict[str, Any]

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
_HEADER = struct.Struct("<iiii")
_CHECKSUM_PRESENT = 1
_MORE_TO_COME = 2

MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH = 100_000
# MongoDB 6.0; PyMongo 4 accepts 6 (3.6) and later.
MAX_WIRE_VERSION = 17
DEFAULT_BATCH = 101
# A getMore without a batch size: MongoDB fills 16 MiB; a count keeps replies far below the
# message size for documents of this project's size without measuring each.
MORE_BATCH = 10_000
# Open cursors kept at most; the oldest are dropped first (a client that never finished).
MAX_CURSORS = 10_000

DUPLICATE_KEY = 11000
# Datetimes come back aware, in UTC, as the services expect of PyMongo.
CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=UTC)

# Fields of a command that do not change what it does here.
_IGNORED = {"lsid", "$db", "txnNumber", "$clusterTime", "readConcern", "writeConcern"}


class CommandError(Exception):
    """A command that fails as a whole: answered `ok: 0` with this code."""

    def __init__(self, message: str, code: int, name: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.extra = extra

    def reply(self) -> Document:
        doc: Document = {"ok": 0.0, "errmsg": str(self), "code": self.code}
        if self.name:
            doc["codeName"] = self.name
        doc.update(self.extra)
        return doc


class Store:
    """The databases, the open cursors, and the commands that answer from them."""

    def __init__(self) -> None:
        self.client: Any = IndexedMongoClient(tz_aware=True)
        self.cursors: dict[int, tuple[str, list[Document]]] = {}
        self._cursor_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._commands: dict[str, Callable[[Document, str], Document]] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": self._ok,
            "endsessions": self._ok,
            "killallsessions": self._ok,
            "buildinfo": self._build_info,
            "getparameter": self._get_parameter,
            "insert": self._insert,
            "update": self._update,
            "delete": self._delete,
            "find": self._find,
            "getmore": self._get_more,
            "killcursors": self._kill_cursors,
            "findandmodify": self._find_and_modify,
            "aggregate": self._aggregate,
            "count": self._count,
            "distinct": self._distinct,
            "createindexes": self._create_indexes,
            "listindexes": self._list_indexes,
            "dropindexes": self._drop_indexes,
            "listcollections": self._list_collections,
            "create": self._create,
            "drop": self._drop,
            "dropdatabase": self._drop_database,
            "listdatabases": self._list_databases,
        }

    def next_connection_id(self) -> int:
        return next(self._connection_ids)

    def run(self, body: Document, connection_id: int) -> Document:
        """The reply to one command; never raises."""
        if not body:
            return CommandError("empty command", 59, "CommandNotFound").reply()
        name = next(iter(body))
        handler = self._commands.get(name.lower())
        try:
            if handler is None:
                raise CommandError(f"no such command: '{name}'", 59, "CommandNotFound")
            db = str(body.get("$db", "test"))
            if handler == self._hello:
                return self._hello(body, db, connection_id)
            return handler(body, db)
        except CommandError as exc:
            return exc.reply()
        except mongomock.DuplicateKeyError as exc:
            return CommandError(str(exc), DUPLICATE_KEY, "DuplicateKey").reply()
        except mongomock.OperationFailure as exc:
            return CommandError(str(exc), exc.code or 2, "BadValue").reply()
        except Exception as exc:  # a bug here or in mongomock: answer, keep the connection
            logger.exception("command %s failed", name)
            return CommandError(f"{type(exc).__name__}: {exc}", 1, "InternalError").reply()

    # -- the handshake and the server ----------------------------------------------------

    def _hello(self, body: Document, db: str, connection_id: int = 0) -> Document:
        return {
            "helloOk": True,
            "isWritablePrimary": True,
            "ismaster": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": MAX_WRITE_BATCH,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": connection_id,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }

    def _ok(self, body: Document, db: str) -> Document:
        return {"ok": 1.0}

    def _build_info(self, body: Document, db: str) -> Document:
        return {"version": "6.0.0", "versionArray": [6, 0, 0, 0], "ok": 1.0}

    def _get_parameter(self, body: Document, db: str) -> Document:
        return {"ok": 1.0}

    # -- writes ----------------------------------------------------------------------------

    def _insert(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["insert"])
        errors: list[Document] = []
        inserted = 0
        for index, doc in enumerate(body.get("documents", [])):
            try:
                collection.insert_one(doc)
                inserted += 1
            except mongomock.DuplicateKeyError:
                errors.append({"index": index, **_duplicate(collection, [doc])})
            except mongomock.OperationFailure as exc:
                errors.append(_write_error(index, exc))
            if errors and body.get("ordered", True):
                break
        return _write_reply(inserted, errors)

    def _update(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["update"])
        errors: list[Document] = []
        matched = modified = 0
        upserted: list[Document] = []
        for index, spec in enumerate(body.get("updates", [])):
            query, change = spec.get("q", {}), spec.get("u", {})
            upsert, multi = bool(spec.get("upsert")), bool(spec.get("multi"))
            options: Document = {"upsert": upsert}
            if spec.get("arrayFilters") is not None:
                options["array_filters"] = spec["arrayFilters"]
            try:
                if _is_replacement(change):
                    result = collection.replace_one(query, change, upsert=upsert)
                elif multi:
                    result = collection.update_many(query, change, **options)
                else:
                    result = collection.update_one(query, change, **options)
            except mongomock.DuplicateKeyError:
                new = _would_be(collection, query, change, upsert, None, multi)
                errors.append({"index": index, **_duplicate(collection, new)})
            except mongomock.OperationFailure as exc:
                errors.append(_write_error(index, exc))
            else:
                if result.upserted_id is not None:
                    upserted.append({"index": index, "_id": result.upserted_id})
                else:
                    matched += result.matched_count
                    modified += result.modified_count
            if errors and body.get("ordered", True):
                break
        reply = _write_reply(matched + len(upserted), errors)
        reply["nModified"] = modified
        if upserted:
            reply["upserted"] = upserted
        return reply

    def _delete(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["delete"])
        deleted = 0
        for spec in body.get("deletes", []):
            query = spec.get("q", {})
            if spec.get("limit", 0) == 1:
                deleted += collection.delete_one(query).deleted_count
            else:
                deleted += collection.delete_many(query).deleted_count
        return _write_reply(deleted, [])

    def _find_and_modify(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["findAndModify"])
        query: Document = body.get("query") or {}
        sort = _sort(body.get("sort"))
        projection = body.get("fields") or None
        if body.get("remove"):
            value = collection.find_one_and_delete(query, projection=projection, sort=sort)
            return {"lastErrorObject": {"n": int(value is not None)}, "value": value, "ok": 1.0}
        change = body.get("update")
        if change is None:
            raise CommandError("either an update or remove=true must be specified", 9)
        upsert, new = bool(body.get("upsert")), bool(body.get("new"))
        try:
            # Only an upsert needs to know first whether a document matches (to tell an
            # upserted one apart); commands run one at a time, so the answer holds.
            if upsert and collection.find_one(query, {"_id": 1}, sort=sort) is None:
                created = _modify(collection, query, change, sort, None, True, True)
                value = _project(collection, created, projection) if new else None
                last: Document = {"n": 1, "updatedExisting": False, "upserted": created["_id"]}
                return {"lastErrorObject": last, "value": value, "ok": 1.0}
            value = _modify(collection, query, change, sort, projection, False, new)
            found = value is not None
            last = {"n": int(found), "updatedExisting": found}
            return {"lastErrorObject": last, "value": value, "ok": 1.0}
        except mongomock.DuplicateKeyError:
            new_docs = _would_be(collection, query, change, upsert, sort, False)
            details = _duplicate(collection, new_docs)
            del details["code"]
            raise CommandError(
                details.pop("errmsg"), DUPLICATE_KEY, "DuplicateKey", **details
            ) from None

    # -- reads and cursors -----------------------------------------------------------------

    def _find(self, body: Document, db: str) -> Document:
        name = body["find"]
        collection = self._collection(db, name)
        limit = abs(int(body.get("limit", 0)))
        docs = list(
            collection.find(
                body.get("filter") or {},
                body.get("projection") or None,
                skip=int(body.get("skip", 0)),
                limit=limit,
                sort=_sort(body.get("sort")),
            )
        )
        single = bool(body.get("singleBatch")) or int(body.get("limit", 0)) < 0
        return self._cursor(f"{db}.{name}", docs, body.get("batchSize"), single)

    def _aggregate(self, body: Document, db: str) -> Document:
        name = body["aggregate"]
        if not isinstance(name, str):
            raise CommandError("aggregate on a database is not supported", 115)
        docs = list(self._collection(db, name).aggregate(body.get("pipeline", [])))
        batch = (body.get("cursor") or {}).get("batchSize")
        return self._cursor(f"{db}.{name}", docs, batch, False)

    def _count(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["count"])
        options = {key: int(body[key]) for key in ("skip", "limit") if body.get(key)}
        return {"n": collection.count_documents(body.get("query") or {}, **options), "ok": 1.0}

    def _distinct(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["distinct"])
        return {"values": collection.distinct(body["key"], body.get("query") or {}), "ok": 1.0}

    def _get_more(self, body: Document, db: str) -> Document:
        cursor_id = int(body["getMore"])
        found = self.cursors.pop(cursor_id, None)
        if found is None:
            raise CommandError(f"cursor id {cursor_id} not found", 43, "CursorNotFound")
        namespace, docs = found
        size = int(body.get("batchSize") or 0) or MORE_BATCH
        batch, rest = docs[:size], docs[size:]
        if rest:
            self.cursors[cursor_id] = (namespace, rest)
        next_id = cursor_id if rest else 0
        return {
            "cursor": {"nextBatch": batch, "id": bson.Int64(next_id), "ns": namespace},
            "ok": 1.0,
        }

    def _kill_cursors(self, body: Document, db: str) -> Document:
        killed: list[Any] = []
        missing: list[Any] = []
        for cursor_id in body.get("cursors", []):
            found = self.cursors.pop(int(cursor_id), None)
            (killed if found is not None else missing).append(cursor_id)
        return {
            "cursorsKilled": killed,
            "cursorsNotFound": missing,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }

    def _cursor(
        self, namespace: str, docs: list[Document], batch_size: Any, single: bool
    ) -> Document:
        size = DEFAULT_BATCH if batch_size is None else int(batch_size)
        if size <= 0 and batch_size is not None:
            size = 0
        first, rest = docs[:size], docs[size:]
        cursor_id = 0
        if rest and not single:
            cursor_id = next(self._cursor_ids)
            self.cursors[cursor_id] = (namespace, rest)
            while len(self.cursors) > MAX_CURSORS:
                del self.cursors[next(iter(self.cursors))]
        return {
            "cursor": {"firstBatch": first, "id": bson.Int64(cursor_id), "ns": namespace},
            "ok": 1.0,
        }

    # -- indexes and collections -----------------------------------------------------------

    def _create_indexes(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["createIndexes"])
        before = len(collection.index_information())
        for spec in body.get("indexes", []):
            options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
            try:
                collection.create_index(list(spec["key"].items()), **options)
            except mongomock.DuplicateKeyError as exc:
                raise CommandError(str(exc), DUPLICATE_KEY, "DuplicateKey") from None
        after = len(collection.index_information())
        return {
            "numIndexesBefore": before,
            "numIndexesAfter": after,
            "createdCollectionAutomatically": before == 0,
            "ok": 1.0,
        }

    def _list_indexes(self, body: Document, db: str) -> Document:
        name = body["listIndexes"]
        if name not in self.client[db].list_collection_names():
            raise CommandError(f"ns does not exist: {db}.{name}", 26, "NamespaceNotFound")
        indexes = []
        for index_name, info in self._collection(db, name).index_information().items():
            described = {k: v for k, v in info.items() if k != "key"}
            indexes.append({"v": 2, "key": dict(info["key"]), "name": index_name, **described})
        return self._cursor(f"{db}.{name}", indexes, None, False)

    def _drop_indexes(self, body: Document, db: str) -> Document:
        collection = self._collection(db, body["dropIndexes"])
        names = body.get("index", "*")
        if names == "*":
            collection.drop_indexes()
        else:
            for index_name in [names] if isinstance(names, str) else names:
                collection.drop_index(index_name)
        return {"ok": 1.0}

    def _list_collections(self, body: Document, db: str) -> Document:
        wanted = body.get("filter") or {}
        found = [
            {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
            for name in self.client[db].list_collection_names()
        ]
        found = [doc for doc in found if filter_applies(wanted, doc)]
        return self._cursor(f"{db}.$cmd.listCollections", found, None, False)

    def _create(self, body: Document, db: str) -> Document:
        name = body["create"]
        if name in self.client[db].list_collection_names():
            raise CommandError(f"Collection {db}.{name} already exists.", 48, "NamespaceExists")
        self.client[db].create_collection(name)
        return {"ok": 1.0}

    def _drop(self, body: Document, db: str) -> Document:
        name = body["drop"]
        if name not in self.client[db].list_collection_names():
            raise CommandError("ns not found", 26, "NamespaceNotFound")
        self.client[db].drop_collection(name)
        return {"ok": 1.0}

    def _drop_database(self, body: Document, db: str) -> Document:
        self.client.drop_database(db)
        return {"ok": 1.0}

    def _list_databases(self, body: Document, db: str) -> Document:
        names = self.client.list_database_names()
        databases = [{"name": name, "sizeOnDisk": 0, "empty": False} for name in names]
        return {"databases": databases, "totalSize": 0, "ok": 1.0}

    def _collection(self, db: str, name: Any) -> Any:
        if not isinstance(name, str) or not name:
            raise CommandError(f"invalid collection name: {name!r}", 73, "InvalidNamespace")
        return self.client[db][name]


# -- what writes answer ------------------------------------------------------------------------


def _write_reply(n: int, errors: list[Document]) -> Document:
    reply: Document = {"n": n, "ok": 1.0}
    if errors:
        reply["writeErrors"] = errors
    return reply


def _write_error(index: int, exc: mongomock.OperationFailure) -> Document:
    return {"index": index, "code": exc.code or 2, "errmsg": str(exc)}


def _is_replacement(change: Any) -> bool:
    return isinstance(change, Mapping) and not any(key.startswith("$") for key in change)


def _sort(sort: Any) -> list[tuple[str, Any]] | None:
    return list(sort.items()) if isinstance(sort, Mapping) and sort else None


def _project(collection: Any, doc: Document, projection: Any) -> Any:
    """The stored `doc` as `projection` shows it."""
    if projection is None:
        return doc
    return collection.find_one({"_id": doc["_id"]}, projection)


def _modify(
    collection: Any,
    query: Document,
    change: Any,
    sort: Any,
    projection: Any,
    upsert: bool,
    after: bool,
) -> Any:
    """findAndModify's update: the document before or `after` it, as `projection` shows it."""
    options: Document = {
        "projection": projection,
        "sort": sort,
        "upsert": upsert,
        "return_document": ReturnDocument.AFTER if after else ReturnDocument.BEFORE,
    }
    if _is_replacement(change):
        return collection.find_one_and_replace(query, change, **options)
    return collection.find_one_and_update(query, change, **options)


def _scratch() -> Any:
    """An empty collection to try a change on, outside the store."""
    return mongomock.MongoClient(tz_aware=True)["scratch"]["scratch"]


def _would_be(
    collection: Any, query: Document, change: Any, upsert: bool, sort: Any, multi: bool
) -> list[Document]:
    """The documents a failed update would have written (to tell which index it broke)."""
    matched = list(collection.find(query, sort=sort, limit=0 if multi else 1))
    results: list[Document] = []
    for doc in matched or ([{}] if upsert else []):
        scratch = _scratch()
        if doc:
            scratch.insert_one(copy.deepcopy(doc))
        if _is_replacement(change):
            scratch.replace_one(query if not doc else {}, change, upsert=True)
            replaced = scratch.find_one({})
            if replaced is not None and doc:
                replaced["_id"] = doc["_id"]
            results.append(replaced or {})
        else:
            scratch.update_one(query if not doc else {}, change, upsert=True)
            results.append(scratch.find_one({}) or {})
    return results


def _duplicate(collection: Any, docs: Iterable[Document]) -> Document:
    """A duplicate-key error as MongoDB reports it: the index `docs` would break, its key
    pattern and the duplicated value (PyMongo puts these in `DuplicateKeyError.details`)."""
    namespace = f"{collection.database.name}.{collection.name}"
    for doc in docs:
        for name, info in collection.index_information().items():
            if name == "_id_":
                continue
            if not info.get("unique"):
                continue
            key_value = {field: _value_at(doc, field) for field, _ in info["key"]}
            if info.get("sparse") and set(key_value.values()) == {None}:
                continue
            partial = info.get("partialFilterExpression")
            if partial is not None and not filter_applies(partial, doc):
                continue
            query: Document = dict(key_value)
            if partial is not None:
                query = {"$and": [partial, query]}
            if any(found["_id"] != doc.get("_id") for found in collection.find(query)):
                return _duplicate_details(namespace, name, dict(info["key"]), key_value)
        # Else an insert of an `_id` already there (updates cannot change `_id`).
        if "_id" in doc and collection.find_one({"_id": doc["_id"]}) is not None:
            return _duplicate_details(namespace, "_id_", {"_id": 1}, {"_id": doc["_id"]})
    return {"code": DUPLICATE_KEY, "errmsg": f"E11000 duplicate key error collection: {namespace}"}


def _duplicate_details(
    namespace: str, index: str, key_pattern: Document, key_value: Document
) -> Document:
    shown = ", ".join(f"{field}: {value!r}" for field, value in key_value.items())
    return {
        "code": DUPLICATE_KEY,
        "errmsg": f"E11000 duplicate key error collection: {namespace} "
        f"index: {index} dup key: {{ {shown} }}",
        "keyPattern": key_pattern,
        "keyValue": key_value,
    }


def _value_at(doc: Document, path: str) -> Any:
    try:
        return mongomock.helpers.get_value_by_dot(doc, path)  # type: ignore[no-untyped-call]
    except KeyError:
        return None


# -- the wire ----------------------------------------------------------------------------------


def _cstring(data: bytes, start: int) -> tuple[str, int]:
    end = data.index(b"\x00", start)
    return data[start:end].decode(), end + 1


def _parse_msg(payload: bytes) -> tuple[int, Document]:
    """An OP_MSG's flags and its command, with its document sequences put into it."""
    (flags,) = struct.unpack_from("<I", payload)
    end = len(payload) - (4 if flags & _CHECKSUM_PRESENT else 0)
    position = 4
    body: Document | None = None
    sequences: dict[str, list[Document]] = {}
    while position < end:
        kind = payload[position]
        position += 1
        if kind == 0:
            (size,) = struct.unpack_from("<i", payload, position)
            body = bson.decode(payload[position : position + size], CODEC)
            position += size
        elif kind == 1:
            (size,) = struct.unpack_from("<i", payload, position)
            identifier, docs_at = _cstring(payload, position + 4)
            chunk = payload[docs_at : position + size]
            sequences.setdefault(identifier, []).extend(bson.decode_all(chunk, CODEC))
            position += size
        else:
            raise ValueError(f"unknown OP_MSG section kind {kind}")
    if body is None:
        raise ValueError("OP_MSG without a body")
    for identifier, docs in sequences.items():
        body.setdefault(identifier, []).extend(docs)
    return flags, body


def _parse_query(payload: bytes) -> tuple[str, Document]:
    """An OP_QUERY's collection and query (the legacy handshake sends one to admin.$cmd)."""
    namespace, position = _cstring(payload, 4)
    position += 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, position)
    query = bson.decode(payload[position : position + size], CODEC)
    if "$query" in query:  # a wrapped query, with $readPreference beside it
        query = dict(query["$query"])
    return namespace, query


def _message(request_id: int, response_to: int, opcode: int, payload: bytes) -> bytes:
    return _HEADER.pack(16 + len(payload), request_id, response_to, opcode) + payload


class _Connection:
    def __init__(self, store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.store = store
        self.reader = reader
        self.writer = writer
        self.connection_id = store.next_connection_id()
        self._request_ids = itertools.count(1)

    async def serve(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                if not await self._exchange():
                    return

    async def _exchange(self) -> bool:
        """Read one message and answer it; False when the connection is to close."""
        header = await self.reader.readexactly(16)
        length, request_id, _, opcode = _HEADER.unpack(header)
        if length < 16 or length > MAX_MESSAGE_SIZE + 16 * 1024:
            logger.warning("message of %d bytes: closing the connection", length)
            return False
        payload = await self.reader.readexactly(length - 16)
        try:
            reply = self._answer(request_id, opcode, payload)
        except (ValueError, IndexError, struct.error, bson.errors.BSONError) as exc:
            logger.warning("malformed message (%s): closing the connection", exc)
            return False
        if reply is None:
            return True
        self.writer.write(reply)
        await self.writer.drain()
        return True

    def _answer(self, request_id: int, opcode: int, payload: bytes) -> bytes | None:
        if opcode == OP_MSG:
            flags, body = _parse_msg(payload)
            result = self.store.run(body, self.connection_id)
            if flags & _MORE_TO_COME:
                return None  # an unacknowledged write: the client waits for nothing
            section = b"\x00" + bson.encode(result)
            return _message(
                next(self._request_ids), request_id, OP_MSG, b"\x00\x00\x00\x00" + section
            )
        if opcode == OP_QUERY:
            namespace, query = _parse_query(payload)
            if not namespace.endswith(".$cmd"):
                result = CommandError("OP_QUERY is only for commands", 352).reply()
            else:
                query.setdefault("$db", namespace[: -len(".$cmd")])
                result = self.store.run(query, self.connection_id)
            reply = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(result)
            return _message(next(self._request_ids), request_id, OP_REPLY, reply)
        raise ValueError(f"opcode {opcode} not supported")


async def _start(host: str, port: int, store: Store | None = None) -> asyncio.Server:
    shared = store or Store()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _Connection(shared, reader, writer).serve()
        except asyncio.CancelledError:
            # The server is stopping. Not re-raised: Python 3.11's streams log a cancelled
            # connection handler as an error.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(connected, host, port)
    logger.info("mongo_wire listening on mongodb://%s:%d/?directConnection=true", host, port)
    return server


async def serve(host: str, port: int) -> None:
    """Serve on `host:port` until cancelled."""
    server = await _start(host, port)
    async with server:
        await server.serve_forever()


@contextlib.asynccontextmanager
async def running(host: str, port: int) -> AsyncIterator[Store]:
    """The server listening on `host:port` in this event loop (for tests); yields its store."""
    store = Store()
    server = await _start(host, port, store)
    try:
        yield store
    finally:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def until_stopped() -> None:
        task = asyncio.create_task(serve(args.host, args.port))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(until_stopped())


if __name__ == "__main__":
    main()
