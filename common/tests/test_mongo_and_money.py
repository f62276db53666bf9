import sys
from decimal import Decimal

import pytest
from bson import ObjectId

from ticketing_common.money import from_cents, parse_price, price_json, to_cents
from ticketing_common.mongo import as_utc, connect_mongo, update_versioned, utcnow


class TestInMemory:
    async def test_without_the_memory_extra_says_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setitem(sys.modules, "mongomock_motor", None)  # as if not installed
        with pytest.raises(RuntimeError) as raised:
            await connect_mongo("memory://", "t")
        assert str(raised.value) == (
            "MONGO_URI=memory:// needs the in-memory database, which is not installed: "
            "install ticketing-common[memory] (development and tests only), or use a "
            "mongodb:// URI"
        )
        # One clear error, not the ImportError's trace under it.
        assert raised.value.__suppress_context__
        assert raised.value.__cause__ is None


class TestVersionedUpdate:
    async def test_matching_version_applies_and_bumps(self):
        mongo = await connect_mongo("memory://", "t")
        doc_id = ObjectId()
        await mongo.db.things.insert_one({"_id": doc_id, "version": 0, "title": "a"})
        updated = await update_versioned(mongo.db.things, doc_id, 0, {"$set": {"title": "b"}})
        assert updated is not None
        assert (updated["title"], updated["version"]) == ("b", 1)

    async def test_stale_version_does_not_apply(self):
        mongo = await connect_mongo("memory://", "t")
        doc_id = ObjectId()
        await mongo.db.things.insert_one({"_id": doc_id, "version": 0, "title": "a"})
        await update_versioned(mongo.db.things, doc_id, 0, {"$set": {"title": "b"}})
        stale = await update_versioned(mongo.db.things, doc_id, 0, {"$set": {"title": "c"}})
        assert stale is None
        stored = await mongo.db.things.find_one({"_id": doc_id})
        assert stored is not None
        assert (stored["title"], stored["version"]) == ("b", 1)

    async def test_datetimes_read_back_as_aware_utc(self):
        mongo = await connect_mongo("memory://", "t")
        now = utcnow()
        await mongo.db.things.insert_one({"_id": 1, "at": now})
        found = await mongo.db.things.find_one({"_id": 1})
        assert found is not None
        stored = as_utc(found["at"])
        assert stored == now
        offset = stored.utcoffset()
        assert offset is not None and offset.total_seconds() == 0


class TestPrices:
    @pytest.mark.parametrize(
        ("raw", "cents"),
        [
            (19.99, 1999),
            ("10.00", 1000),
            (10, 1000),
            ("0.01", 1),
            (999999.99, 99999999),
            (0.29, 29),
        ],
    )
    def test_valid_prices_become_exact_cents(self, raw, cents):
        assert to_cents(parse_price(raw)) == cents

    @pytest.mark.parametrize(
        "raw", [0, -1, 1.234, "1.001", 1000000, "abc", "", True, None, [], "nan", "inf", "1e400"]
    )
    def test_invalid_prices_are_refused(self, raw):
        with pytest.raises(ValueError):
            parse_price(raw)

    def test_cents_back_to_a_json_number(self):
        assert price_json(from_cents(1999)) == 19.99
        assert price_json(from_cents(1000)) == 10
        assert from_cents(29) == Decimal("0.29")
