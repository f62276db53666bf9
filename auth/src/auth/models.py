"""The user record as the auth service works with it; `repository` stores it as a document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    """An account. `session_version` is `tokenVersion`: a session token issued at an
    earlier version is revoked (docs/SPEC.md §2)."""

    id: str
    email: str
    password_hash: str
    session_version: int
    created_at: datetime
