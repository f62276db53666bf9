"""The one TICKETING stream, created or updated with the same config everywhere."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from ticketing_common.config import EventSettings
from ticketing_common.events.subjects import Subjects

logger = logging.getLogger("ticketing.events")

STREAM_NAME = "TICKETING"
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_config(settings: EventSettings | None = None) -> StreamConfig:
    """The stream's config, with the limits of `settings` (EventSettings' defaults when None)."""
    if settings is None:
        settings = EventSettings.model_construct()
    return StreamConfig(
        name=STREAM_NAME,
        subjects=[subject.value for subject in Subjects],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        # Bounded on its volume: past either limit the oldest messages are dropped (a
        # consumer that far behind has bigger problems than the events it missed).
        max_age=settings.STREAM_MAX_AGE_SECONDS,
        max_bytes=settings.STREAM_MAX_BYTES,
        discard=DiscardPolicy.OLD,
        num_replicas=settings.STREAM_REPLICAS,
    )


async def ensure_stream(js: JetStreamContext, settings: EventSettings | None = None) -> None:
    """Create the stream, or bring an existing one to this config (the limits of
    `settings`); safe to run anywhere."""
    config = stream_config(settings)
    try:
        await js.add_stream(config)
    except BadRequestError:
        # It exists with another config (an older subject list, say): update it in place.
        await js.update_stream(config)
        logger.info("updated stream %s to the current config", STREAM_NAME)


def durable_name(service: str, subject: Subjects) -> str:
    """`<service>-<subject with ':' as '-'>`: one durable and queue name per (service, subject)."""
    return f"{service}-{subject.value.replace(':', '-')}"
