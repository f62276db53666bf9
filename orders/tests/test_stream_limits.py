"""The TICKETING stream is bounded by STREAM_MAX_AGE_SECONDS / STREAM_MAX_BYTES, applied
by a service as it connects (its own broker here: the limits are the stream's, shared)."""

import nats
from nats.js.api import DiscardPolicy

from orders.app import create_app
from orders.config import Settings
from ticketing_common.events import STREAM_NAME, Subjects
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.services import running_client, service_settings

MAX_BYTES = 64 * 1024
MAX_AGE = 3600.0


class TestStreamLimits:
    async def test_service_bounds_the_stream_and_the_oldest_messages_go(
        self, nats_server: NatsServer
    ) -> None:
        settings = service_settings(
            Settings, nats_server.url, STREAM_MAX_BYTES=MAX_BYTES, STREAM_MAX_AGE_SECONDS=MAX_AGE
        )
        async with running_client(create_app(settings)):
            nc = await nats.connect(nats_server.url)
            try:
                js = nc.jetstream()
                config = (await js.stream_info(STREAM_NAME)).config
                assert (config.max_bytes, config.max_age) == (MAX_BYTES, MAX_AGE)
                assert config.discard == DiscardPolicy.OLD
                # Four times the bound in 1 KiB messages on a subject orders does not read.
                body = b"x" * 1024
                for _ in range(4 * MAX_BYTES // len(body)):
                    await js.publish(
                        Subjects.ORDER_CANCELLED.value, body, headers={"Nats-Msg-Id": random_id()}
                    )
                state = (await js.stream_info(STREAM_NAME)).state
                assert 0 < state.bytes <= MAX_BYTES
                assert state.first_seq > 1  # the oldest were dropped
            finally:
                await nc.close()

    async def test_existing_stream_is_brought_to_the_configured_limits(
        self, nats_server: NatsServer
    ) -> None:
        # First with the defaults, then a service with other limits updates it in place.
        async with running_client(create_app(service_settings(Settings, nats_server.url))):
            pass
        settings = service_settings(Settings, nats_server.url, STREAM_MAX_BYTES=MAX_BYTES)
        async with running_client(create_app(settings)):
            nc = await nats.connect(nats_server.url)
            try:
                config = (await nc.jetstream().stream_info(STREAM_NAME)).config
            finally:
                await nc.close()
        defaults = Settings.model_fields
        assert config.max_bytes == MAX_BYTES
        assert config.max_age == defaults["STREAM_MAX_AGE_SECONDS"].default
