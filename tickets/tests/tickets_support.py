"""Helpers of the tickets tests: a running app, and a probe on the real TICKETING stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient, Response
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import ServerError

from ticketing_common.events import (
    STREAM_NAME,
    EventPayload,
    OrderCancelledEvent,
    OrderCreatedEvent,
    OrderStatus,
    Subjects,
    durable_name,
    ensure_stream,
)
from ticketing_common.testing import TEST_JWT_KEY, cookie_for, random_id
from tickets.app import create_app
from tickets.config import Settings

TICKETS = "/api/tickets"
CREATED_DURABLE = durable_name("tickets", Subjects.ORDER_CREATED)
CANCELLED_DURABLE = durable_name("tickets", Subjects.ORDER_CANCELLED)


def make_settings(nats_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "JWT_KEY": TEST_JWT_KEY,
        "MONGO_URI": "memory://",
        "NATS_URL": nats_url,
        "EVENT_RETRY_MIN_SECONDS": 0.05,
        "EVENT_RETRY_MAX_SECONDS": 0.2,
        "PUBLISH_TIMEOUT_SECONDS": 5.0,
        "OUTBOX_INTERVAL_SECONDS": 0.2,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        AsyncClient(transport=ASGITransport(manager.app), base_url="http://test") as http,
    ):
        yield http


async def create_ticket(
    client: AsyncClient, user_id: str, title: str = "concert", price: Any = 20
) -> dict[str, Any]:
    response = await client.post(
        TICKETS, json={"title": title, "price": price}, headers=signed_in(user_id)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_in(user_id: str | None = None) -> dict[str, str]:
    """Request headers carrying the session cookie of `user_id` (a random user if None)."""
    ((name, value),) = cookie_for(user_id).items()
    return {"cookie": f"{name}={value}"}


def errors(response: Response) -> list[dict[str, str]]:
    body: dict[str, list[dict[str, str]]] = response.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def fields(response: Response) -> list[str]:
    return sorted(entry.get("field", "") for entry in errors(response))


def order_created(
    ticket_id: str, order_id: str | None = None, price: str = "20", version: int = 0
) -> OrderCreatedEvent:
    return OrderCreatedEvent.model_validate(
        {
            "id": order_id or random_id(),
            "version": version,
            "status": OrderStatus.CREATED,
            "userId": random_id(),
            "expiresAt": datetime.now(UTC) + timedelta(minutes=15),
            "ticket": {"id": ticket_id, "price": price},
        }
    )


def order_cancelled(ticket_id: str, order_id: str, version: int = 1) -> OrderCancelledEvent:
    return OrderCancelledEvent.model_validate(
        {"id": order_id, "version": version, "ticket": {"id": ticket_id}}
    )


@dataclass
class StoredMessage:
    seq: int
    subject: str
    data: dict[str, Any]
    raw: bytes
    msg_id: str | None


@dataclass
class Probe:
    """A test's own connection to the broker: publish as another service would, read
    what the stream holds, watch every publish on a subject, wait for a consumer."""

    nc: NATS
    seen: dict[str, list[Msg]] = field(default_factory=dict)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def publish(self, event: EventPayload, msg_id: str | None = None) -> PubAck:
        """Publish `event`; a fresh `msg_id` makes the stream keep a repeat (a redelivery)."""
        ack: PubAck = await self.js.publish(
            event.subject.value,
            event.to_json(),
            headers={"Nats-Msg-Id": msg_id or event.message_id()},
        )
        return ack

    async def stored(self, subject: Subjects | None = None) -> list[StoredMessage]:
        info = await self.js.stream_info(STREAM_NAME)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if not info.state.messages:
                break
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
        """Record every publish on `subject` from now on, kept by the stream or not."""
        box = self.seen.setdefault(subject.value, [])

        async def keep(msg: Msg) -> None:
            box.append(msg)

        await self.nc.subscribe(subject.value, cb=keep)
        await self.nc.flush()

    async def wait_handled(self, durable: str, seq: int, timeout: float = 10.0) -> None:
        """Until the consumer `durable` has delivered up to `seq` (a message of its
        subject), nothing is waiting and nothing is unacked."""

        async def handled() -> bool:
            info = await self.js.consumer_info(STREAM_NAME, durable)
            return bool(
                info.delivered.stream_seq >= seq
                and info.num_pending == 0
                and info.num_ack_pending == 0
            )

        try:
            await eventually(handled, timeout, f"{durable} handling seq {seq}")
        except AssertionError:
            info = await self.js.consumer_info(STREAM_NAME, durable)
            raise AssertionError(f"{info}; stream: {await self.stored()}") from None


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def empty_stream(url: str) -> None:
    """Create the TICKETING stream and purge it.

    `jetstream_clean` deletes the stream, but nats-server 2.15 sometimes brings a just
    deleted file-stored stream back with its old messages when it is created again at
    once (measured: about 1 in 15 delete-create rounds); a purge after the creation
    empties it for sure.
    """
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for attempt in range(50):
            try:
                await ensure_stream(js)
                break
            except ServerError:
                # "error creating store for stream" while the old one is being removed.
                if attempt == 49:
                    raise
                await asyncio.sleep(0.05)
        await js.purge_stream(STREAM_NAME)
        info = await js.stream_info(STREAM_NAME)
        assert info.state.messages == 0
    finally:
        await nc.close()


@asynccontextmanager
async def probe_on(url: str) -> AsyncIterator[Probe]:
    nc = await nats.connect(url)
    try:
        yield Probe(nc)
    finally:
        await nc.close()


async def deliver(probe: Probe, event: EventPayload, msg_id: str | None = None) -> int:
    """Publish `event` as its service would and wait until tickets has handled it; the
    stream sequence."""
    durable = CREATED_DURABLE if event.subject is Subjects.ORDER_CREATED else CANCELLED_DURABLE
    ack = await probe.publish(event, msg_id)
    await probe.wait_handled(durable, ack.seq)
    return int(ack.seq)


async def reserve(probe: Probe, ticket_id: str, order_id: str | None = None) -> str:
    """Have an order take the ticket; the order id."""
    event = order_created(ticket_id, order_id)
    await deliver(probe, event)
    return event.id
