"""All database access of the auth service: the queries, and the one conversion between a
`User` and its document."""

from __future__ import annotations

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from auth.models import User
from ticketing_common.mongo import Collection, Document, as_utc, utcnow


class EmailInUse(Exception):
    pass


def _user_from_doc(doc: Document) -> User:
    return User(
        id=str(doc["_id"]),
        email=doc["email"],
        password_hash=doc["password"],
        # Missing or None: written before session versions; version 0.
        session_version=doc.get("tokenVersion") or 0,
        created_at=as_utc(doc["createdAt"]),
    )


def _user_to_doc(user: User) -> Document:
    return {
        "_id": ObjectId(user.id),
        "email": user.email,
        "password": user.password_hash,
        "createdAt": user.created_at,
        "tokenVersion": user.session_version,
    }


class Users:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def create_indexes(self) -> None:
        await self.collection.create_index("email", unique=True)

    async def create(self, email: str, password_hash: str) -> User:
        """A new user at session version 0; `EmailInUse` when the email has an account."""
        user = User(
            id=str(ObjectId()),
            email=email,
            password_hash=password_hash,
            session_version=0,
            created_at=utcnow(),
        )
        try:
            await self.collection.insert_one(_user_to_doc(user))
        except DuplicateKeyError:
            raise EmailInUse(email) from None
        return user

    async def by_email(self, email: str) -> User | None:
        doc: Document | None = await self.collection.find_one({"email": email})
        return None if doc is None else _user_from_doc(doc)

    async def by_id(self, user_id: str) -> User | None:
        doc: Document | None = await self.collection.find_one({"_id": ObjectId(user_id)})
        return None if doc is None else _user_from_doc(doc)

    async def raise_session_version(self, user_id: str, version: int) -> User | None:
        """Move the user from session `version` to the next; the user after it, or None
        when the user is gone or no longer at `version` (only from the current version: a
        token already revoked cannot sign the user out again)."""
        current: object = version if version else {"$in": [0, None]}  # None: written before
        doc: Document | None = await self.collection.find_one_and_update(
            {"_id": ObjectId(user_id), "tokenVersion": current},
            {"$inc": {"tokenVersion": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _user_from_doc(doc)
