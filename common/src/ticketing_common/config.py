"""Settings shared by every service, and a loader that refuses to start cleanly."""

from __future__ import annotations

import sys
from typing import Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_KEY = "dev-only-jwt-key-change-me-0123456789abcdef"
# HS256 wants a key at least as long as its hash (RFC 7518 §3.2).
MIN_JWT_KEY_BYTES = 32
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class ServiceSettings(BaseSettings):
    """Base of every service's settings: fields are named like the environment variables."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    # The largest request body an HTTP service reads (413 beyond); ours are a few hundred
    # bytes, Stripe's webhook events a few kilobytes.
    MAX_BODY_BYTES: int = Field(DEFAULT_MAX_BODY_BYTES, gt=0)
    # The services that verify sessions (those with a JWT_KEY) also accept tokens signed
    # with this one while JWT_KEY is rotated; unset or empty: none.
    JWT_KEY_PREVIOUS: str | None = None

    @field_validator("JWT_KEY_PREVIOUS", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _strong_session_key(self) -> Self:
        """A short `JWT_KEY` (or `JWT_KEY_PREVIOUS`), or the public dev key, runs only on
        an in-memory database (dev and tests), never where the data outlives the process."""
        uri = getattr(self, "MONGO_URI", None)
        if not hasattr(self, "JWT_KEY") or (isinstance(uri, str) and uri.startswith("memory://")):
            return self
        for name in ("JWT_KEY", "JWT_KEY_PREVIOUS"):
            key = getattr(self, name, None)
            if not isinstance(key, str):
                continue
            if key == DEV_JWT_KEY:
                raise ValueError(
                    f"invalid environment variable {name}: the public dev-only key runs only "
                    "with MONGO_URI=memory://"
                )
            if len(key.encode()) < MIN_JWT_KEY_BYTES:
                raise ValueError(
                    f"invalid environment variable {name}: must be at least "
                    f"{MIN_JWT_KEY_BYTES} bytes unless MONGO_URI=memory://"
                )
        return self


class EventSettings(ServiceSettings):
    """Broker settings of services on JetStream."""

    NATS_URL: str
    # Back-off between redeliveries of a failed event, and the give-up bound counted
    # from the deliveries (about 10 minutes); tests shrink them.
    EVENT_RETRY_MIN_SECONDS: float = 1.0
    EVENT_RETRY_MAX_SECONDS: float = 30.0
    EVENT_GIVE_UP_SECONDS: float = 600.0
    # How long a publish is retried through a broker outage, and how often the outbox
    # re-publisher looks for leftovers.
    PUBLISH_TIMEOUT_SECONDS: float = 30.0
    OUTBOX_INTERVAL_SECONDS: float = 3.0
    # The TICKETING stream's limits (docs/SPEC.md §4), applied by every service that
    # connects, so set them alike everywhere: the oldest messages go first past either.
    # The age outlasts the duplicate window; the bytes stay under the broker's 1 GiB volume.
    STREAM_MAX_AGE_SECONDS: float = Field(default=7 * 24 * 3600.0, ge=120.0)
    STREAM_MAX_BYTES: int = Field(default=768 * 1024 * 1024, gt=0)
    # Copies of the stream across a JetStream cluster: 1 on a single node (skaffold dev),
    # 3 on the production overlay's three-node cluster (one node may go without loss).
    STREAM_REPLICAS: int = Field(default=1, ge=1, le=5)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], service: str) -> S:
    """Build `cls` from the environment; exit with one line naming what is missing or wrong."""
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if not name:  # a check across variables says which itself
                problems.append(str(err["msg"]).removeprefix("Value error, "))
            elif err["type"] == "missing":
                problems.append(f"missing required environment variable {name}")
            else:
                problems.append(f"invalid environment variable {name}: {err['msg']}")
        print(f"{service}: refusing to start: {'; '.join(problems)}", file=sys.stderr)
        raise SystemExit(2) from None
