"""`memory://`'s database (ticketing_common.memory_database): mongomock's answers, found
without scanning the collection for `_id` and indexed fields."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ticketing_common.memory_database import IndexedMongoClient
from ticketing_common.mongo import connect_mongo

USERS = ["u1", "u2", "u3"]


def random_doc(rng: random.Random, ticket_ids: list[ObjectId]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "userId": rng.choice([*USERS, None]),
        "ticket": {"id": rng.choice(ticket_ids), "version": rng.randrange(3)},
        "status": rng.choice(["created", "cancelled", "complete"]),
        "outbox": rng.choice([[], [{"msgId": "m1"}], [{"msgId": "m2"}, {"msgId": "m3"}]]),
    }
    # Shapes a lookup must not be fooled by: missing fields, arrays, subdocuments.
    shape = rng.randrange(6)
    if shape == 0:
        del doc["userId"]
    elif shape == 1:
        doc["userId"] = [rng.choice(USERS)]
    elif shape == 2:
        doc["ticket"] = [{"id": rng.choice(ticket_ids)}]
    elif shape == 3:
        doc["ticket"] = {"id": {"nested": 1}}
    if rng.random() < 0.5:
        doc["openSlot"] = rng.randrange(3)
    return doc


def queries(
    rng: random.Random, docs: list[dict[str, Any]], ticket_ids: list[ObjectId]
) -> list[Any]:
    some = rng.choice(docs)
    return [
        {"_id": some["_id"]},
        {"_id": ObjectId()},
        {"_id": some["_id"], "status": "created"},
        {"userId": rng.choice(USERS)},
        {"userId": rng.choice(USERS), "openSlot": {"$exists": True}},
        {"$and": [{"openSlot": {"$exists": True}}, {"userId": "u1", "openSlot": 1}]},
        {"ticket.id": rng.choice(ticket_ids)},
        {"ticket.id": rng.choice(ticket_ids), "status": {"$in": ["created", "complete"]}},
        {"$and": [{"status": "created"}, {"ticket.id": rng.choice(ticket_ids)}]},
        {"outbox.msgId": {"$exists": True}},
        {"outbox.msgId": "m2"},
        {"openSlot": 0},
        {"userId": None},
        {"status": "created"},
    ]


def test_answers_equal_mongomocks_under_random_writes():
    """Every query answers exactly what plain mongomock answers, in the same order, after
    each of 250 random inserts, updates and deletes applied to both."""
    rng = random.Random(16)
    plain: Any = mongomock.MongoClient(tz_aware=True)["db"]["orders"]
    indexed = IndexedMongoClient(tz_aware=True)["db"]["orders"]
    ticket_ids = [ObjectId() for _ in range(8)]
    for collection in (plain, indexed):
        collection.create_index([("ticket.id", 1)])
        collection.create_index([("userId", 1), ("openSlot", 1)])
        collection.create_index("outbox.msgId", sparse=True)
    docs: list[dict[str, Any]] = []
    for step in range(250):
        action = rng.random()
        if action < 0.5 or not docs:
            doc = random_doc(rng, ticket_ids)
            docs.append(doc)
            plain.insert_one(dict(doc))
            indexed.insert_one(dict(doc))
        elif action < 0.85:
            target = rng.choice(docs)["_id"]
            change: dict[str, Any] = rng.choice(
                [
                    {"$set": {"userId": rng.choice(USERS)}},
                    {"$unset": {"openSlot": ""}},
                    {"$set": {"openSlot": rng.randrange(3)}},
                    {"$set": {"ticket.id": rng.choice(ticket_ids)}},
                    {"$pull": {"outbox": {"msgId": "m1"}}},
                    {"$push": {"outbox": {"msgId": "m2"}}},
                ]
            )
            query = rng.choice([{"_id": target}, {"userId": rng.choice(USERS)}])
            for collection in (plain, indexed):
                collection.find_one_and_update(query, change)
        else:
            target = rng.choice(docs)["_id"]
            plain.delete_one({"_id": target})
            indexed.delete_one({"_id": target})
        for query in queries(rng, docs, ticket_ids):
            assert list(indexed.find(query)) == list(plain.find(query)), (step, query)
            assert indexed.count_documents(query) == plain.count_documents(query)


def test_unique_and_partial_indexes_still_refuse_duplicates():
    """The reservation's partial unique index refuses a second holder, also when an update
    (not an insert) would make one, and frees the ticket once the holder lets go."""
    orders = IndexedMongoClient(tz_aware=True)["db"]["orders"]
    orders.create_index(
        [("ticket.id", 1)], unique=True, partialFilterExpression={"holdsTicket": True}
    )
    ticket = ObjectId()
    first = orders.insert_one({"ticket": {"id": ticket}, "holdsTicket": True}).inserted_id
    with pytest.raises(DuplicateKeyError):
        orders.insert_one({"ticket": {"id": ticket}, "holdsTicket": True})
    other = orders.insert_one({"ticket": {"id": ObjectId()}, "holdsTicket": True}).inserted_id
    with pytest.raises(DuplicateKeyError):
        orders.update_one({"_id": other}, {"$set": {"ticket.id": ticket}})
    assert orders.find_one({"_id": other})["ticket"]["id"] != ticket  # rolled back
    released = orders.find_one_and_update(
        {"_id": first}, {"$set": {"holdsTicket": False}}, return_document=ReturnDocument.AFTER
    )
    assert released["holdsTicket"] is False
    orders.insert_one({"ticket": {"id": ticket}, "holdsTicket": True})
    assert orders.count_documents({"ticket.id": ticket, "holdsTicket": True}) == 1


async def test_memory_uri_lookups_cost_the_same_at_100_and_20000_documents():
    """Through `connect_mongo("memory://")`: a lookup by `_id` and by a uniquely indexed
    field, and an insert checking that index, cost about the same with 100 or 20,000
    documents stored (a scan costs 200 times more at the larger size)."""
    mongo = await connect_mongo("memory://", "growth")

    async def costs(size: int) -> list[float]:
        """Seconds per call of each operation with `size` documents stored (the fastest
        of five rounds: the machine is shared)."""
        collection = mongo.db[f"payments{size}"]
        await collection.create_index("orderId", unique=True)
        for number in range(size):
            await collection.insert_one({"_id": number, "orderId": f"order-{number}"})
        fresh = iter(range(size, size + 1000))
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: collection.find_one({"_id": size // 2}),
            lambda: collection.find_one({"orderId": f"order-{size // 3}"}),
            lambda: collection.insert_one({"orderId": f"new-{next(fresh)}"}),
        ]
        best = []
        for call in calls:
            rounds = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(100):
                    await call()
                rounds.append((time.perf_counter() - started) / 100)
            best.append(min(rounds))
        return best

    small, large = await costs(100), await costs(20_000)
    for few, many in zip(small, large, strict=True):
        assert many < 10 * few, (small, large)
