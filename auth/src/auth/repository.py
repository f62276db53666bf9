"""All database access of the auth service."""

from __future__ import annotations

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ticketing_common.mongo import Collection, Document, utcnow


class EmailInUse(Exception):
    pass


class Users:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def create_indexes(self) -> None:
        await self.collection.create_index("email", unique=True)

    async def create(self, email: str, password_hash: str) -> Document:
        doc = {"_id": ObjectId(), "email": email, "password": password_hash, "createdAt": utcnow()}
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise EmailInUse(email) from None
        return doc

    async def by_email(self, email: str) -> Document | None:
        doc: Document | None = await self.collection.find_one({"email": email})
        return doc
