"""Keyset paging of the list routes (docs/SPEC.md §3).

A page is read after an opaque cursor, the last `_id` of the page before, in `_id` order
(an ObjectId starts with its creation time, so this is oldest first). Unlike an offset,
a cursor names a position that items added or removed meanwhile cannot shift: a walk
through every page shows each item at most once, and never skips one that was there
when the walk began and still is.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from bson import ObjectId
from fastapi import Query
from pymongo import ASCENDING

from ticketing_common.errors import BadRequestError, ValidationFailedError
from ticketing_common.mongo import Collection, Document

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

LIMIT_MESSAGE = f"Limit must be a whole number from 1 to {MAX_LIMIT}"
CURSOR_MESSAGE = "Cursor is not valid; use the one the Link header gives"

# At most three ASCII digits: int() would also take " 5", "5_0" and non-ASCII digits.
_LIMIT = re.compile(r"[0-9]{1,3}")
# base64url of an ObjectId's 12 bytes, unpadded: exactly 16 characters.
_CURSOR = re.compile(r"[A-Za-z0-9_-]{16}")


# The list routes' query parameters, read as text: `PageRequest.parse` checks them, so a
# bad one is our 400 with its field (and our message), not a validation error.
LimitQuery = Annotated[
    str | None,
    Query(description=f"Items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
]
CursorQuery = Annotated[
    str | None,
    Query(description="Where the page starts: the cursor of the `Link` header's next page"),
]


def encode_cursor(after: ObjectId) -> str:
    """The cursor of the page after `after`."""
    return base64.urlsafe_b64encode(after.binary).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> ObjectId:
    """The `_id` a cursor names; 400 with field `cursor` when it is not one of ours."""
    if not _CURSOR.fullmatch(cursor):
        raise BadRequestError(CURSOR_MESSAGE, field="cursor")
    try:
        return ObjectId(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise BadRequestError(CURSOR_MESSAGE, field="cursor") from None


@dataclass(frozen=True)
class PageRequest:
    """What a list request asked for: how many, after which `_id` (None: from the start)."""

    limit: int = DEFAULT_LIMIT
    after: ObjectId | None = None

    @classmethod
    def parse(cls, limit: str | None, cursor: str | None) -> PageRequest:
        """The query's `limit` and `cursor`; 400 with one entry per bad field."""
        problems: list[tuple[str | None, str]] = []
        size = DEFAULT_LIMIT
        if limit is not None:
            if _LIMIT.fullmatch(limit) and 1 <= int(limit) <= MAX_LIMIT:
                size = int(limit)
            else:
                problems.append(("limit", LIMIT_MESSAGE))
        after = None
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except BadRequestError as exc:
                problems.append((exc.field, exc.message))
        if problems:
            raise ValidationFailedError(problems)
        return cls(size, after)


@dataclass(frozen=True)
class Page:
    """One page of documents, and the cursor of the next page (None on the last)."""

    docs: list[Document]
    next_cursor: str | None

    def link_header(self, path: str, limit: int) -> dict[str, str]:
        """The `Link` header naming the next page (a path on this site), if any."""
        if self.next_cursor is None:
            return {}
        query = urlencode({"limit": limit, "cursor": self.next_cursor})
        return {"Link": f'<{path}?{query}>; rel="next"'}


async def find_page(
    collection: Collection,
    query: Document,
    request: PageRequest,
    projection: Document | None = None,
) -> Page:
    """The documents matching `query` after `request.after`, in `_id` order.

    `query` must not constrain `_id`, and the collection needs an index on `query`'s
    equality fields followed by `_id`, so a page costs a range scan of `limit + 1` keys.
    One document more than the page is read to know whether a next page exists.
    """
    if request.after is not None:
        query = {**query, "_id": {"$gt": request.after}}
    docs: list[Document] = (
        await collection.find(query, projection=projection)
        .sort([("_id", ASCENDING)])
        .limit(request.limit + 1)
        .to_list(None)
    )
    if len(docs) <= request.limit:
        return Page(docs, None)
    page = docs[: request.limit]
    return Page(page, encode_cursor(page[-1]["_id"]))
