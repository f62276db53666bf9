"""The session cookie (docs/SPEC.md §2): issue, clear and verify it; FastAPI dependencies.

The cookie `session` holds base64 of `{"jwt": "<token>"}`. Only the auth service
issues it; every service verifies it with the shared `JWT_KEY`, or, while the key is being
rotated, with `JWT_KEY_PREVIOUS` (tokens signed before the change stay sessions; new ones
are signed with `JWT_KEY` only). A missing, malformed, forged or expired cookie means
"signed out", never an error by itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from ticketing_common.errors import NotAuthorizedError
from ticketing_common.ids import ObjectIdStr

COOKIE_NAME = "session"
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


class UserPayload(BaseModel):
    """The signed-in user, as the JWT carries it (an id that is no ObjectId: signed out).
    `ver` is the user's session version when it was issued: auth revokes every earlier
    token by raising the version (signout); tokens without one are version 0."""

    id: ObjectIdStr
    email: str
    iat: int
    exp: int
    ver: int = 0


@dataclass(frozen=True)
class SessionCodec:
    """Signs and verifies session tokens; lives on `app.state.sessions`. Tokens are signed
    with `jwt_key`; they verify with it or with `previous_jwt_key` (a key rotation)."""

    jwt_key: str
    cookie_secure: bool = True
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    previous_jwt_key: str | None = None

    def token_for(self, user_id: str, email: str, now: int | None = None, version: int = 0) -> str:
        issued = int(time.time()) if now is None else now
        claims = {
            "id": user_id,
            "email": email,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
            "ver": version,
        }
        return jwt.encode(claims, self.jwt_key, algorithm=ALGORITHM)

    def cookie_value(self, token: str) -> str:
        return base64.b64encode(json.dumps({"jwt": token}).encode()).decode()

    def decode_cookie(self, raw: str | None) -> UserPayload | None:
        if not raw:
            return None
        try:
            envelope: Any = json.loads(base64.b64decode(raw, validate=True))
            token = envelope["jwt"]
            if not isinstance(token, str):
                return None
            return UserPayload.model_validate(self._claims(token))
        except (ValueError, TypeError, KeyError, binascii.Error, jwt.PyJWTError):
            # pydantic's ValidationError is a ValueError: a malformed payload too.
            return None

    def _claims(self, token: str) -> dict[str, Any]:
        """The verified claims, by the current key or else the previous one. Only a wrong
        signature tries the next key: an expired or malformed token is refused as it is."""
        keys = [self.jwt_key, *([self.previous_jwt_key] if self.previous_jwt_key else [])]
        for key in keys[:-1]:
            try:
                return self._decode(token, key)
            except jwt.InvalidSignatureError:
                continue
        return self._decode(token, keys[-1])

    @staticmethod
    def _decode(token: str, key: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["exp", "iat"]}
        )
        return claims

    def set_cookie(self, response: Response, user_id: str, email: str, version: int = 0) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.cookie_value(self.token_for(user_id, email, version=version)),
            max_age=self.ttl_seconds,
            path="/",
            httponly=True,
            secure=self.cookie_secure,
            samesite="lax",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path="/", httponly=True, secure=self.cookie_secure, samesite="lax"
        )


def install_sessions(app: FastAPI, codec: SessionCodec) -> None:
    app.state.sessions = codec


def get_sessions(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def read_current_user(request: Request) -> UserPayload | None:
    """The signed-in user, or None."""
    return get_sessions(request).decode_cookie(request.cookies.get(COOKIE_NAME))


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker
# thread, a hand-off that costs more than these lookups (docs/benchmarks.md).


async def current_user(request: Request) -> UserPayload | None:
    """The signed-in user, or None."""
    return read_current_user(request)


async def require_user(request: Request) -> UserPayload:
    """The signed-in user; 401 `Not authorized` otherwise."""
    user = read_current_user(request)
    if user is None:
        raise NotAuthorizedError()
    return user


async def sessions(request: Request) -> SessionCodec:
    return get_sessions(request)


CurrentUser = Annotated[UserPayload | None, Depends(current_user)]
RequireUser = Annotated[UserPayload, Depends(require_user)]
SessionsDep = Annotated[SessionCodec, Depends(sessions)]


def _uses(dependant: Dependant, call: Any) -> bool:
    return any(dep.call is call or _uses(dep, call) for dep in dependant.dependencies)


def route_requires_user(route: object) -> bool:
    """Whether `route` depends on `RequireUser` (directly or through a dependency)."""
    return isinstance(route, APIRoute) and _uses(route.dependant, require_user)
