"""A test's own connection to the TICKETING stream, for assertions on what services publish."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, PubAck

from ticketing_common.events import STREAM_NAME, EventPayload, Subjects, durable_name
from ticketing_testing.events import eventually
from ticketing_testing.factories import order_created


@dataclass
class StoredMessage:
    """One message the stream holds: its sequence, subject, decoded and raw body, message id."""

    seq: int
    subject: str
    data: Any
    raw: bytes
    msg_id: str | None


@dataclass
class Probe:
    """A test's own connection to the broker beside the service under test (`service`,
    whose durable consumers `wait_handled` and `unacked` read): publish as another service
    would, read what the stream holds, watch every publish on a subject."""

    nc: NATS
    service: str
    seen: dict[str, list[Msg]] = field(default_factory=dict)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    def durable(self, subject: Subjects) -> str:
        """The durable consumer name of the service's listener of `subject`."""
        return durable_name(self.service, subject)

    async def publish(self, event: EventPayload, msg_id: str | None = None) -> PubAck:
        """Publish `event`; a fresh `msg_id` makes the stream keep a repeat (a redelivery)."""
        ack: PubAck = await self.js.publish(
            event.subject.value,
            event.to_json(),
            headers={"Nats-Msg-Id": msg_id or event.message_id()},
        )
        return ack

    async def publish_and_wait(self, event: EventPayload, msg_id: str | None = None) -> PubAck:
        """Publish `event` and wait until the service has handled it."""
        ack = await self.publish(event, msg_id)
        await self.wait_handled(event.subject, ack.seq)
        return ack

    async def stored(self, subject: Subjects | None = None) -> list[StoredMessage]:
        """What the stream holds (of `subject` only, when given), oldest first."""
        info = await self.js.stream_info(STREAM_NAME)
        found: list[StoredMessage] = []
        if not info.state.messages:
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await self.js.get_msg(STREAM_NAME, seq)
            if subject is not None and raw.subject != subject.value:
                continue
            headers = raw.headers or {}
            found.append(
                StoredMessage(
                    seq=seq,
                    subject=raw.subject or "",
                    data=json.loads(raw.data or b"null"),
                    raw=raw.data or b"",
                    msg_id=headers.get("Nats-Msg-Id"),
                )
            )
        return found

    async def watch(self, subject: Subjects) -> None:
        """Record every publish on `subject` in `seen` from now on, kept by the stream or not."""
        box = self.seen.setdefault(subject.value, [])

        async def keep(msg: Msg) -> None:
            box.append(msg)

        await self.nc.subscribe(subject.value, cb=keep)
        await self.nc.flush()

    async def wait_handled(self, subject: Subjects, seq: int, timeout: float = 10.0) -> None:
        """Until the service's consumer of `subject` has delivered up to `seq`, nothing of
        its subject is waiting and nothing is unacked."""
        durable = self.durable(subject)
        last: list[ConsumerInfo] = []

        async def handled() -> bool:
            info = await self.js.consumer_info(STREAM_NAME, durable)
            last[:] = [info]
            delivered = info.delivered.stream_seq if info.delivered else 0
            return delivered >= seq and not info.num_pending and not info.num_ack_pending

        try:
            await eventually(handled, timeout, f"{durable} handling seq {seq}")
        except AssertionError as exc:
            stored = [(m.seq, m.msg_id) for m in await self.stored(subject)]
            raise AssertionError(f"{exc}; consumer: {last}; stored: {stored}") from None

    async def unacked(self, subject: Subjects) -> int:
        """How many messages the service's consumer of `subject` has not acked yet."""
        info = await self.js.consumer_info(STREAM_NAME, self.durable(subject))
        return int(info.num_ack_pending or 0)


@asynccontextmanager
async def probe_on(url: str, service: str) -> AsyncIterator[Probe]:
    """A `Probe` on the broker at `url`, beside the service named `service`."""
    nc = await nats.connect(url)
    try:
        yield Probe(nc, service)
    finally:
        await nc.close()


async def deliver(probe: Probe, event: EventPayload, msg_id: str | None = None) -> int:
    """Publish `event` as its service would and wait until the probe's service has handled
    it; the stream sequence."""
    ack = await probe.publish_and_wait(event, msg_id)
    return int(ack.seq)


async def reserve(probe: Probe, ticket_id: str, order_id: str | None = None) -> str:
    """Have an order take the ticket (`order:created`, handled by the probe's service, the
    tickets service); the order id."""
    event = order_created(ticket_id=ticket_id, order_id=order_id)
    await deliver(probe, event)
    return event.id
