"""The MongoDB wire stand-in, driven by PyMongo's own async client."""

from __future__ import annotations

import asyncio
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.monitoring import CommandListener, CommandStartedEvent, CommandSucceededEvent

from ticketing_devstack.mongo_wire import running
from ticketing_devstack.servers import free_port

HOST = "127.0.0.1"


class Commands(CommandListener):
    """The names of the commands a client sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: object) -> None:
        pass


def _client(port: int, *listeners: CommandListener) -> AsyncMongoClient[dict[str, object]]:
    return AsyncMongoClient(
        f"mongodb://{HOST}:{port}/?directConnection=true",
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=5000,
        event_listeners=list(listeners),
    )


@pytest.fixture
async def port() -> AsyncIterator[int]:
    chosen = free_port()
    async with running(HOST, chosen):
        yield chosen


@pytest.fixture
async def client(port: int) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    mongo = _client(port)
    yield mongo
    await mongo.close()


async def test_hello_is_a_standalone_and_a_document_reads_back_with_its_datetime_and_ids(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    assert (await client.admin.command("ping"))["ok"] == 1
    hello = await client.admin.command("hello")
    assert (hello["isWritablePrimary"], "setName" in hello) == (True, False)
    assert hello["connectionId"] > 0
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    ticket = ObjectId()
    inserted = await client.shop.orders.insert_one({"ticket": ticket, "at": at, "price": 1500})

    found = await client.shop.orders.find_one({"_id": inserted.inserted_id})

    assert found == {"_id": inserted.inserted_id, "ticket": ticket, "at": at, "price": 1500}
    assert found is not None and found["at"].utcoffset().total_seconds() == 0  # type: ignore[attr-defined]


async def test_unique_index_rejects_a_second_insert_with_the_key_pattern_and_value(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    users = client.auth.users
    await users.create_index("email", unique=True)
    await users.insert_one({"email": "a@b.c"})

    with pytest.raises(DuplicateKeyError) as raised:
        await users.insert_one({"email": "a@b.c"})

    assert raised.value.code == 11000
    assert raised.value.details is not None
    assert raised.value.details["keyPattern"] == {"email": 1}
    assert raised.value.details["keyValue"] == {"email": "a@b.c"}
    assert await users.count_documents({}) == 1


async def test_find_one_and_update_onto_a_taken_unique_key_raises_duplicate_key(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    users = client.auth.users
    await users.create_index("email", unique=True)
    await users.insert_many([{"email": "a@b.c"}, {"email": "d@e.f"}])

    with pytest.raises(DuplicateKeyError) as raised:
        await users.find_one_and_update({"email": "d@e.f"}, {"$set": {"email": "a@b.c"}})

    assert raised.value.details is not None
    assert raised.value.details["keyPattern"] == {"email": 1}
    assert await users.count_documents({"email": "d@e.f"}) == 1


async def test_partial_unique_index_only_constrains_the_documents_it_covers(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    orders = client.orders.orders
    await orders.create_index(
        [("ticket", ASCENDING)],
        unique=True,
        partialFilterExpression={"holds": True},
        name="one_holding",
    )
    ticket = ObjectId()
    await orders.insert_one({"ticket": ticket, "holds": False})
    await orders.insert_one({"ticket": ticket, "holds": True})

    with pytest.raises(DuplicateKeyError) as raised:
        await orders.insert_one({"ticket": ticket, "holds": True})

    assert "one_holding" in str(raised.value.details)
    names = [index["name"] async for index in await orders.list_indexes()]
    assert names == ["_id_", "one_holding"]


async def test_find_one_and_update_upserts_and_returns_the_document_after(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    counters = client.shop.counters
    first = await counters.find_one_and_update(
        {"name": "seq"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    second = await counters.find_one_and_update(
        {"name": "seq"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    before = await counters.find_one_and_update({"name": "seq"}, {"$inc": {"n": 1}})

    assert first is not None and first["n"] == 1
    assert second is not None and second["_id"] == first["_id"] and second["n"] == 2
    assert before is not None and before["n"] == 2
    assert await counters.find_one_and_update({"name": "none"}, {"$set": {"n": 1}}) is None


async def test_update_one_reports_the_upserted_id_and_then_the_match(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    tickets = client.tickets.tickets
    created = await tickets.update_one(
        {"slug": "x"}, {"$set": {"price": 10}, "$setOnInsert": {"version": 0}}, upsert=True
    )
    changed = await tickets.update_one({"slug": "x"}, {"$inc": {"price": 5}, "$unset": {"v": ""}})

    assert created.upserted_id is not None
    assert (changed.matched_count, changed.modified_count, changed.upserted_id) == (1, 1, None)
    stored = await tickets.find_one({"_id": created.upserted_id})
    assert stored is not None and (stored["price"], stored["version"]) == (15, 0)


async def test_count_documents_counts_the_matches(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    tickets = client.tickets.tickets
    await tickets.insert_many([{"owner": i % 3} for i in range(30)])

    assert await tickets.count_documents({"owner": 1}) == 10
    assert await tickets.count_documents({}) == 30
    assert await tickets.count_documents({"owner": 9}) == 0


async def test_a_cursor_larger_than_one_batch_is_read_to_the_end_with_get_more(
    port: int,
) -> None:
    commands = Commands()
    mongo = _client(port, commands)
    try:
        tickets = mongo.tickets.tickets
        await tickets.insert_many([{"n": n} for n in range(250)])

        found = await tickets.find({}, sort=[("n", ASCENDING)]).batch_size(40).to_list()

        assert [doc["n"] for doc in found] == list(range(250))
        assert commands.names.count("getMore") == 6
    finally:
        await mongo.close()


async def test_two_clients_racing_one_versioned_update_never_both_win(port: int) -> None:
    first, second = _client(port), _client(port)
    try:
        docs = first.shop.docs
        ids = (await docs.insert_many([{"version": 0} for _ in range(20)])).inserted_ids

        async def bump(mongo: AsyncMongoClient[dict[str, object]], doc_id: ObjectId) -> bool:
            changed = await mongo.shop.docs.find_one_and_update(
                {"_id": doc_id, "version": 0}, {"$inc": {"version": 1}}
            )
            return changed is not None

        for doc_id in ids:
            wins = await asyncio.gather(bump(first, doc_id), bump(second, doc_id))
            assert sorted(wins) == [False, True]
        assert await docs.count_documents({"version": 1}) == 20
    finally:
        await first.close()
        await second.close()


async def test_two_clients_see_each_others_writes(port: int) -> None:
    writer, reader = _client(port), _client(port)
    try:
        inserted = await writer.tickets.tickets.insert_one({"title": "concert"})
        await reader.tickets.tickets.update_one(
            {"_id": inserted.inserted_id}, {"$set": {"title": "opera"}}
        )

        assert await writer.tickets.tickets.find_one({}, {"_id": 0}) == {"title": "opera"}
        await writer.tickets.tickets.delete_one({"_id": inserted.inserted_id})
        assert await reader.tickets.tickets.count_documents({}) == 0
    finally:
        await writer.close()
        await reader.close()


async def test_an_unknown_command_fails_and_the_connection_keeps_working(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    with pytest.raises(OperationFailure) as raised:
        await client.admin.command("noSuchThing")

    assert raised.value.code == 59
    assert (await client.admin.command("ping"))["ok"] == 1


async def test_array_updates_and_a_projection_apply_as_in_mongodb(
    client: AsyncMongoClient[dict[str, object]],
) -> None:
    docs = client.shop.docs
    inserted = await docs.insert_one({"outbox": [{"id": 1}], "title": "t"})
    await docs.update_one(
        {"_id": inserted.inserted_id},
        {"$push": {"outbox": {"$each": [{"id": 2}, {"id": 3}], "$slice": -2}}},
    )
    await docs.update_many({}, {"$pull": {"outbox": {"id": 2}}})

    assert await docs.find_one({}, projection={"outbox": True, "_id": False}) == {
        "outbox": [{"id": 3}]
    }
    assert await docs.find_one({}, projection={"outbox": False, "_id": False}) == {"title": "t"}


async def test_a_malformed_message_closes_only_its_own_connection(
    port: int, client: AsyncMongoClient[dict[str, object]]
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(struct.pack("<iiii", 20, 1, 0, 9999) + b"junk")
    await writer.drain()

    assert await reader.read() == b""  # closed, without an answer
    writer.close()
    assert (await client.admin.command("ping"))["ok"] == 1


def test_the_module_serves_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticketing_devstack.mongo_wire",
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert "listening" in process.stderr.readline()

        async def ping() -> object:
            mongo = _client(port)
            try:
                return (await mongo.admin.command("ping"))["ok"]
            finally:
                await mongo.close()

        assert asyncio.run(ping()) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
