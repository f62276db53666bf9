"""Sessions as auth issues them, signed with the tests' key."""

from __future__ import annotations

from bson import ObjectId

from ticketing_common.auth import COOKIE_NAME, SessionCodec

TEST_JWT_KEY = "test-jwt-key-0123456789abcdef0123456789abcdef"


def random_id() -> str:
    return str(ObjectId())


def cookie_for(
    user_id: str | None = None, email: str = "test@test.com", key: str = TEST_JWT_KEY
) -> dict[str, str]:
    """Cookies of a signed-in user, for `AsyncClient(cookies=...)` or a request."""
    codec = SessionCodec(jwt_key=key, cookie_secure=False)
    token = codec.token_for(user_id or random_id(), email)
    return {COOKIE_NAME: codec.cookie_value(token)}
