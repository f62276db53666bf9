"""mongomock with hash lookups for `_id` and the indexed fields (`memory://`).

mongomock answers every query by testing each stored document against the filter, so a
lookup by `_id` or by a uniquely indexed field costs time in proportion to the whole
collection, and so does the unique-index check of every insert and update. Here its store
also keeps, for `_id` and each field of a declared index, which documents hold which
value, and hands mongomock only those candidates; mongomock still tests each candidate
against the whole filter and does everything else (updates, sorting, projections,
`return_document`, unique and partial indexes) as before. So the answers are mongomock's,
only found without the scan (benchmarks/bench_memory_db.py measures both).

The candidates are a superset of the matches: a condition narrows only when it is an
equality with a string, ObjectId or integer, or `{"$exists": True}`, on `_id` or an indexed
field, at the top level of the filter or of a `$and`; a document whose value there is not
a plain scalar (an array, a subdocument, anything else) is a candidate for every such
condition. Anything else is answered by mongomock's scan.

mongomock changes documents in place when it updates them; each document an update visits
is marked and re-read into the lookups before the next lookup (mongomock's own check of
the unique indexes, right after the change, included).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import mongomock.collection
import mongomock.database
import mongomock.filtering
import mongomock.mongo_client
import mongomock.store
from bson import ObjectId

# mongomock's classes, extended below; typed loosely (its own hints say pymongo's types).
Collection: Any = mongomock.collection.Collection
Database: Any = mongomock.database.Database
MongoClient: Any = mongomock.mongo_client.MongoClient
CollectionStore: Any = mongomock.store.CollectionStore
DatabaseStore: Any = mongomock.store.DatabaseStore
ServerStore: Any = mongomock.store.ServerStore
filter_applies: Any = mongomock.filtering.filter_applies

# What a document holds at a path, when it is not a plain value to look up by.
_MISSING = object()  # absent (also: below an empty array): matches no condition here
_ANY = object()  # an array, a subdocument or another type: a candidate for every condition

# Document values kept by value (equal values of these types hash alike: 1 == 1.0 == True).
_PLAIN_VALUES = (str, ObjectId, int, float, bool, datetime.datetime)
# Query values looked up by value (not bool: True would find 1 too; harmless but useless).
_PLAIN_QUERIES = (str, ObjectId, int)


def _key_at(doc: Mapping[str, Any], path: str) -> object:
    """What `doc` holds at the dotted `path`, as a lookup key, `_MISSING` or `_ANY`."""
    value: Any = doc
    parts = path.split(".")
    for number, part in enumerate(parts):
        if isinstance(value, list):
            # Below an empty array nothing exists; below another, an element may match.
            return _MISSING if not value else _ANY
        if not isinstance(value, Mapping):
            return _MISSING
        if part not in value:
            return _MISSING
        value = value[part]
        if number == len(parts) - 1:
            break
    if value is None or type(value) in _PLAIN_VALUES:
        return value
    return _ANY


def _conditions(filter: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The (path, condition) pairs every match must satisfy: the filter's own and those of
    the filters in its `$and`."""
    for path, condition in filter.items():
        if path == "$and" and isinstance(condition, list):
            for part in condition:
                if isinstance(part, Mapping):
                    yield from _conditions(part)
        elif not path.startswith("$"):
            yield path, condition


class IndexedCollectionStore(CollectionStore):  # type: ignore[misc]
    """A collection's documents, with which of them hold which value at each indexed path."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._order: dict[Any, int] = {}
        self._next = 0
        self._paths: tuple[str, ...] = ()
        self._by_value: dict[str, dict[object, set[Any]]] = {}
        self._present: dict[str, set[Any]] = {}
        self._any: dict[str, set[Any]] = {}
        self._keys: dict[Any, tuple[object, ...]] = {}
        self._dirty: set[Any] = set()

    # -- what changes the documents ----------------------------------------------------------

    def __setitem__(self, key: Any, val: Any) -> None:
        super().__setitem__(key, val)
        if key not in self._order:
            self._order[key] = self._next
            self._next += 1
        self._dirty.add(key)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._order.pop(key, None)
        self._dirty.add(key)

    def drop(self) -> None:
        super().drop()
        self._order.clear()
        self._reset(())

    def touched(self, key: Any) -> None:
        """The document under `key` may be about to change in place."""
        self._dirty.add(key)

    # -- lookups -------------------------------------------------------------------------------

    def candidates(self, filter: object) -> list[Any] | None:
        """The documents that may match `filter`, in stored order; None when no condition
        narrows them (then the whole collection is scanned)."""
        if not isinstance(filter, Mapping) or self._ttl_indexes:
            return None  # expiring documents leave the store behind our back
        best: set[Any] | None = None
        for path, condition in _conditions(filter):
            found = self._matching(path, condition)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
                if len(best) <= 1:
                    break
        if best is None:
            return None
        ids = sorted(best, key=self._order.__getitem__) if len(best) > 1 else list(best)
        return [self._documents[key] for key in ids]

    def _matching(self, path: str, condition: object) -> set[Any] | None:
        """The ids of the documents that may satisfy `condition` at `path`; None when this
        condition cannot narrow them."""
        plain = type(condition) in _PLAIN_QUERIES
        if path == "_id":
            # Stored under their `_id`: a plain one is the document's own key.
            return ({condition} & self._order.keys()) if plain else None
        exists = isinstance(condition, Mapping) and list(condition.items()) == [("$exists", True)]
        if not (plain or exists):
            return None
        self._refresh()
        if path not in self._by_value:
            return None
        if exists:
            return self._present[path]
        return self._by_value[path].get(condition, set()) | self._any[path]

    def _refresh(self) -> None:
        """Bring the lookups up to date with the indexes declared and the documents changed."""
        paths = tuple(
            sorted({field for index in self.indexes.values() for field, _ in index["key"]})
        )
        paths = tuple(path for path in paths if path != "_id")
        if paths != self._paths:
            self._reset(paths)
            self._dirty = set(self._documents)
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            self._forget(key)
            doc = self._documents.get(key)
            if doc is not None:
                self._remember(key, doc)

    def _reset(self, paths: tuple[str, ...]) -> None:
        self._paths = paths
        self._by_value = {path: {} for path in paths}
        self._present = {path: set() for path in paths}
        self._any = {path: set() for path in paths}
        self._keys = {}
        self._dirty = set()

    def _remember(self, key: Any, doc: Mapping[str, Any]) -> None:
        keys = tuple(_key_at(doc, path) for path in self._paths)
        self._keys[key] = keys
        for path, value in zip(self._paths, keys, strict=True):
            if value is _MISSING:
                continue
            self._present[path].add(key)
            if value is _ANY:
                self._any[path].add(key)
            else:
                self._by_value[path].setdefault(value, set()).add(key)

    def _forget(self, key: Any) -> None:
        keys = self._keys.pop(key, None)
        if keys is None:
            return
        for path, value in zip(self._paths, keys, strict=True):
            self._present[path].discard(key)
            self._any[path].discard(key)
            if value is not _MISSING and value is not _ANY:
                holders = self._by_value[path].get(value)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del self._by_value[path][value]


class IndexedDatabaseStore(DatabaseStore):  # type: ignore[misc]
    def __getitem__(self, col_name: str) -> Any:
        if col_name not in self._collections:
            self._collections[col_name] = IndexedCollectionStore(col_name)
        return self._collections[col_name]


class IndexedServerStore(ServerStore):  # type: ignore[misc]
    def __getitem__(self, db_name: str) -> Any:
        if db_name not in self._databases:
            self._databases[db_name] = IndexedDatabaseStore()
        return self._databases[db_name]


class IndexedCollection(Collection):  # type: ignore[misc]
    """mongomock's collection, asking its store for the candidates of a filter first."""

    _updating = False

    def _iter_documents(self, filter: Any) -> Any:
        store = self._store
        found = store.candidates(filter) if isinstance(store, IndexedCollectionStore) else None
        if found is None:
            return self._marked(super()._iter_documents(filter))
        if store.is_empty:
            filter_applies(filter, {})  # mongomock validates the filter even then
        return self._marked(doc for doc in found if filter_applies(filter, doc))

    def _marked(self, docs: Iterator[Any]) -> Iterator[Any]:
        """`docs`, each marked as changing when an update is about to change it in place."""
        for doc in docs:
            if self._updating and isinstance(self._store, IndexedCollectionStore):
                self._store.touched(doc["_id"])
            yield doc

    def _update(self, *args: Any, **kwargs: Any) -> Any:
        self._updating = True
        try:
            return super()._update(*args, **kwargs)
        finally:
            self._updating = False

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        changed = super().with_options(*args, **kwargs)
        if changed is self:
            return self
        return IndexedCollection(
            self.database,
            self.name,
            write_concern=changed.write_concern,
            read_concern=changed.read_concern,
            read_preference=changed.read_preference,
            codec_options=changed.codec_options,
            _db_store=self._db_store,
        )


class IndexedDatabase(Database):  # type: ignore[misc]
    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name not in self._collection_accesses:
            self._ensure_valid_collection_name(name)
            self._collection_accesses[name] = IndexedCollection(
                self,
                name=name,
                read_preference=self.read_preference,
                codec_options=self._codec_options,
                _db_store=self._store,
            )
        return super().get_collection(name, *args, **kwargs)


class IndexedMongoClient(MongoClient):  # type: ignore[misc]
    """A mongomock client whose collections look up by `_id` and indexed fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("_store", IndexedServerStore())
        super().__init__(*args, **kwargs)

    def get_database(self, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if name is not None and name not in self._database_accesses:
            self._database_accesses[name] = IndexedDatabase(
                self,
                name,
                read_preference=self.read_preference,
                codec_options=self._codec_options,
                _store=self._store[name],
            )
        return super().get_database(name, *args, **kwargs)
