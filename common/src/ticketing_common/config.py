"""Settings shared by every service, and a loader that refuses to start cleanly."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_KEY = "dev-only-jwt-key-change-me-0123456789abcdef"


class ServiceSettings(BaseSettings):
    """Base of every service's settings: fields are named like the environment variables."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)


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


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], service: str) -> S:
    """Build `cls` from the environment; exit with one line naming what is missing or wrong."""
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if err["type"] == "missing":
                problems.append(f"missing required environment variable {name}")
            else:
                problems.append(f"invalid environment variable {name}: {err['msg']}")
        print(f"{service}: refusing to start: {'; '.join(problems)}", file=sys.stderr)
        raise SystemExit(2) from None
