"""What a lookup costs in each in-memory database candidate as the collection grows.

Run: `.venv/bin/python benchmarks/bench_memory_db.py [--sizes 1000,10000,50000]
[--engines ...]`. For each engine and size it fills one collection with order-shaped
documents (an `_id`, a unique `orderId`, a `userId` shared by 100 documents, an outbox
array), with the indexes declared as the services declare them, then times:

- `find_one({"_id": ...})`, the services' most common call;
- `find_one({"orderId": ...})`, a unique indexed field (payments' claim lookup);
- `insert_one` of a new document into that collection (it checks the unique index);
- `find_one_and_update({"_id": ...}, {"$set"/"$inc"}, return_document=AFTER)`.

Engines not installed are skipped (montydb, mongita and tinymongo are not project
dependencies; try them in a scratch venv: `uv pip install montydb mongita tinymongo`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument


def doc(number: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "orderId": f"order-{number}",
        "userId": f"user-{number % 100}",
        "status": "created",
        "priceCents": 1999,
        "version": 0,
        "outbox": [],
    }


def mongomock_collection() -> Any:
    import mongomock

    return mongomock.MongoClient()["bench"]["orders"]


def indexed_memory_collection() -> Any:
    """What `memory://` uses (ticketing_common.memory_database)."""
    from ticketing_common.memory_database import IndexedMongoClient

    return IndexedMongoClient()["bench"]["orders"]


_monty: Any = None


def montydb_collection() -> Any:
    from montydb import MontyClient

    # One client per process: montydb fixes its BSON setting at the first one.
    global _monty
    if _monty is None:
        _monty = MontyClient(":memory:")
    return _monty["bench"][f"orders{ObjectId()}"]


def mongita_collection() -> Any:
    from mongita import MongitaClientMemory

    return MongitaClientMemory()["bench"]["orders"]


def tinymongo_collection() -> Any:
    from tinymongo import TinyMongoClient

    return TinyMongoClient(backend="memory")["bench"]["orders"]


ENGINES: dict[str, Callable[[], Any]] = {
    "mongomock": mongomock_collection,
    "mongomock+indexes": indexed_memory_collection,
    "montydb": montydb_collection,
    "mongita": mongita_collection,
    "tinymongo": tinymongo_collection,
}


def timed(call: Callable[[int], object], repeat: int) -> float:
    """Microseconds per call, over `repeat` calls (argument: the call's number), after one
    untimed call (mongomock+indexes builds a lookup for an index declared after the fill
    at its first use, once, as it would at a service's start on an empty collection)."""
    call(repeat)
    started = time.perf_counter()
    for number in range(repeat):
        call(number)
    return (time.perf_counter() - started) / repeat * 1e6


def measure(make: Callable[[], Any], size: int, repeat: int) -> dict[str, float | str]:
    collection = make()
    docs = [doc(n) for n in range(size)]
    started = time.perf_counter()
    for d in docs:
        collection.insert_one(dict(d))
    # The unique index after the fill: a scanning engine checks it with a scan per insert,
    # which would make filling 50k documents take most of an hour.
    try:
        collection.create_index("orderId", unique=True)
    except Exception as exc:  # an engine without unique indexes still gets measured
        print(f"  {make.__name__}: create_index(unique) failed: {exc!r}", file=sys.stderr)
        collection.create_index("orderId")
    fill = time.perf_counter() - started
    ids = [d["_id"] for d in docs]
    probe = [ids[(n * 7919) % size] for n in range(repeat + 1)]
    order_ids = [docs[(n * 7919) % size]["orderId"] for n in range(repeat + 1)]
    results: dict[str, float | str] = {"fill s": f"{fill:.1f}"}
    results["find_one _id"] = timed(lambda n: collection.find_one({"_id": probe[n]}), repeat)
    results["find_one orderId"] = timed(
        lambda n: collection.find_one({"orderId": order_ids[n]}), repeat
    )
    results["insert_one"] = timed(lambda n: collection.insert_one(doc(size + n + 1)), repeat)
    try:
        results["find_one_and_update _id"] = timed(
            lambda n: collection.find_one_and_update(
                {"_id": probe[n]},
                {"$set": {"status": "complete"}, "$inc": {"version": 1}},
                return_document=ReturnDocument.AFTER,
            ),
            repeat,
        )
    except Exception as exc:
        results["find_one_and_update _id"] = f"fails: {type(exc).__name__}"
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeat", type=int, default=200, help="calls timed per figure")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    columns = ["find_one _id", "find_one orderId", "insert_one", "find_one_and_update _id"]
    print("µs per call (the collection holds `documents`; fill: time to insert them)")
    print(f"| engine | documents | {' | '.join(columns)} | fill s |")
    print(f"|---|---:|{'---:|' * len(columns)}---:|")
    for name in args.engines.split(","):
        make = ENGINES[name]
        try:
            make()
        except ImportError:
            print(f"| {name} | not installed |", flush=True)
            continue
        for size in sizes:
            # A scanning engine at 50k documents takes minutes per figure: fewer calls.
            repeat = (
                max(20, args.repeat * 1000 // size) if name != "mongomock+indexes" else args.repeat
            )
            r = measure(make, size, repeat)
            cells = [f"{v:.0f}" if isinstance(v, float) else v for v in (r[c] for c in columns)]
            print(f"| {name} | {size} | {' | '.join(cells)} | {r['fill s']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
