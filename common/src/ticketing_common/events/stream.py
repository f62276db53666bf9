"""The one TICKETING stream, created or updated with the same config everywhere."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from ticketing_common.events.subjects import Subjects

logger = logging.getLogger("ticketing.events")

STREAM_NAME = "TICKETING"
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_config() -> StreamConfig:
    return StreamConfig(
        name=STREAM_NAME,
        subjects=[subject.value for subject in Subjects],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream, or bring an existing one to this config; safe to run anywhere."""
    config = stream_config()
    try:
        await js.add_stream(config)
    except BadRequestError:
        # It exists with another config (an older subject list, say): update it in place.
        await js.update_stream(config)
        logger.info("updated stream %s to the current config", STREAM_NAME)


def durable_name(service: str, subject: Subjects) -> str:
    """`<service>-<subject with ':' as '-'>`: one durable and queue name per (service, subject)."""
    return f"{service}-{subject.value.replace(':', '-')}"
