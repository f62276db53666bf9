"""All database access of the auth service."""

from __future__ import annotations

from typing import Any

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
        doc = {
            "_id": ObjectId(),
            "email": email,
            "password": password_hash,
            "createdAt": utcnow(),
            "tokenVersion": 0,
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise EmailInUse(email) from None
        return doc

    async def by_email(self, email: str) -> Document | None:
        doc: Document | None = await self.collection.find_one({"email": email})
        return doc

    async def by_id(self, user_id: str) -> Document | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(user_id)})
        return doc

    async def revoke_sessions(self, user_id: str, version: int) -> None:
        """Raise the user's session version, so every token issued before is refused. Only
        from the current version: a token already revoked cannot sign the user out again."""
        current: Any = version if version else {"$in": [0, None]}  # None: written before
        await self.collection.update_one(
            {"_id": ObjectId(user_id), "tokenVersion": current}, {"$inc": {"tokenVersion": 1}}
        )


def session_version(user: Document) -> int:
    version: int = user.get("tokenVersion", 0)
    return version
