"""Helpers of the orders tests: a running app, and a probe on the real TICKETING stream."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import nats
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient, Response
from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from orders.app import create_app
from orders.config import Settings
from ticketing_common.events import (
    STREAM_NAME,
    EventPayload,
    ExpirationCompleteEvent,
    PaymentCreatedEvent,
    Subjects,
    TicketCreatedEvent,
    TicketUpdatedEvent,
    durable_name,
    ensure_stream,
)
from ticketing_common.mongo import Mongo, connect_mongo
from ticketing_common.testing import TEST_JWT_KEY, cookie_for, random_id

ORDERS = "/api/orders"
DURABLES = {subject: durable_name("orders", subject) for subject in Subjects}


def orders_settings(nats_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "JWT_KEY": TEST_JWT_KEY,
        "MONGO_URI": "memory://",
        "NATS_URL": nats_url,
        "EVENT_RETRY_MIN_SECONDS": 0.05,
        "EVENT_RETRY_MAX_SECONDS": 0.2,
        "EVENT_GIVE_UP_SECONDS": 60.0,
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


# A yielding database ------------------------------------------------------------------
#
# mongomock answers inside the calling coroutine without ever suspending it, so with the
# in-memory database a "read, check, then write" would look atomic. A real driver waits on
# the network at every call; this wrapper gives the event loop away around every database
# call the same way, so concurrent requests interleave as they would on MongoDB.


class YieldingCollection:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await attr(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return call


class YieldingDatabase:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if inspect.ismethod(attr) or name.startswith("_"):
            return attr
        return YieldingCollection(attr)

    def __getitem__(self, name: str) -> YieldingCollection:
        return YieldingCollection(self._inner[name])


@contextmanager
def yielding_database(*app_modules: str) -> Iterator[None]:
    """Apps created inside (of `orders.app`, or of the `app_modules` named) get an
    in-memory database that yields at every call."""

    async def connect(uri: str, default_db: str, timeout: float = 30.0) -> Mongo:
        mongo = await connect_mongo(uri, default_db, timeout)
        return Mongo(client=mongo.client, db=YieldingDatabase(mongo.db), in_memory=True)

    with ExitStack() as stack:
        for module in app_modules or ("orders.app",):
            stack.enter_context(mock.patch(f"{module}.connect_mongo", connect))
        yield


class SecondReplicaMongo(Mongo):
    """Another process's view of a database someone else opened and will close."""

    async def ping(self) -> bool:
        await self.db.list_collection_names()
        return True

    async def close(self) -> None:
        return None


@contextmanager
def shared_database(*app_modules: str) -> Iterator[None]:
    """Orders apps created inside share one yielding in-memory database, like replicas of
    the service on one MongoDB: the first creates the durable consumers afresh, the others
    join them as further members of each queue group.

    Other apps named in `app_modules` get a yielding database of their own.
    """
    first: list[Mongo] = []

    async def connect_orders(uri: str, default_db: str, timeout: float = 30.0) -> Mongo:
        if not first:
            mongo = await connect_mongo(uri, default_db, timeout)
            first.append(Mongo(mongo.client, YieldingDatabase(mongo.db), in_memory=True))
            return first[0]
        return SecondReplicaMongo(first[0].client, first[0].db, in_memory=False)

    with ExitStack() as stack:
        stack.enter_context(yielding_database(*app_modules))
        stack.enter_context(mock.patch("orders.app.connect_mongo", connect_orders))
        yield


# HTTP helpers -----------------------------------------------------------------------


def errors(response: Response) -> list[dict[str, str]]:
    body: dict[str, list[dict[str, str]]] = response.json()
    assert set(body) == {"errors"}, body
    return body["errors"]


def fields(response: Response) -> list[str]:
    return sorted(entry.get("field", "") for entry in errors(response))


async def place_order(client: AsyncClient, ticket_id: str, user_id: str) -> dict[str, Any]:
    response = await client.post(ORDERS, json={"ticketId": ticket_id}, cookies=cookie_for(user_id))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def show_order(client: AsyncClient, order_id: str, user_id: str) -> dict[str, Any]:
    response = await client.get(f"{ORDERS}/{order_id}", cookies=cookie_for(user_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Events -------------------------------------------------------------------------------


def ticket_created(
    ticket_id: str | None = None, title: str = "concert", price: Any = "20", version: int = 0
) -> TicketCreatedEvent:
    return TicketCreatedEvent.model_validate(
        {
            "id": ticket_id or random_id(),
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def ticket_updated(
    ticket_id: str, version: int, title: str = "concert", price: Any = "20"
) -> TicketUpdatedEvent:
    return TicketUpdatedEvent.model_validate(
        {
            "id": ticket_id,
            "version": version,
            "title": title,
            "price": price,
            "userId": random_id(),
        }
    )


def expiration_complete(order_id: str) -> ExpirationCompleteEvent:
    return ExpirationCompleteEvent.model_validate({"orderId": order_id})


def payment_created(order_id: str, payment_id: str | None = None) -> PaymentCreatedEvent:
    return PaymentCreatedEvent.model_validate(
        {"id": payment_id or random_id(), "orderId": order_id, "stripeId": "pi_test_123"}
    )


@dataclass
class StoredMessage:
    seq: int
    subject: str
    data: Any
    raw: bytes
    msg_id: str | None


@dataclass
class Probe:
    """A test's own connection to the broker: publish as another service would, read
    what the stream holds, wait for the orders service's consumers."""

    nc: NATS

    @property
    def js(self) -> Any:
        return self.nc.jetstream()

    async def publish(self, event: EventPayload, msg_id: str | None = None) -> PubAck:
        """Publish `event`; a fresh `msg_id` makes the stream keep a repeat (a redelivery)."""
        ack: PubAck = await self.js.publish(
            event.subject.value,
            event.to_json(),
            headers={"Nats-Msg-Id": msg_id or event.message_id()},
        )
        return ack

    async def publish_and_wait(self, event: EventPayload, msg_id: str | None = None) -> PubAck:
        """Publish `event` and wait until the orders service has acked it."""
        ack = await self.publish(event, msg_id)
        await self.wait_handled(event.subject, ack.seq)
        return ack

    async def stored(self, subject: Subjects | None = None) -> list[StoredMessage]:
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
                    subject=raw.subject,
                    data=json.loads(raw.data or b"null"),
                    raw=raw.data or b"",
                    msg_id=headers.get("Nats-Msg-Id"),
                )
            )
        return found

    async def wait_handled(self, subject: Subjects, seq: int, timeout: float = 10.0) -> None:
        """Until orders' consumer of `subject` has delivered up to `seq` and acked all."""
        durable = DURABLES[subject]
        last: list[Any] = []

        async def handled() -> bool:
            info = await self.js.consumer_info(STREAM_NAME, durable)
            last[:] = [info]
            return bool(info.delivered.stream_seq >= seq and info.num_ack_pending == 0)

        try:
            await eventually(handled, timeout, f"{durable} handling seq {seq}")
        except AssertionError as exc:
            stored = [(m.seq, m.msg_id) for m in await self.stored(subject)]
            raise AssertionError(f"{exc}; consumer: {last}; stored: {stored}") from None

    async def unacked(self, subject: Subjects) -> int:
        info = await self.js.consumer_info(STREAM_NAME, DURABLES[subject])
        return int(info.num_ack_pending)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def empty_stream(url: str) -> None:
    """Make sure the TICKETING stream exists and holds nothing.

    `jetstream_clean` deletes the stream, but the nats-server 2.15.1 here often brings a
    file-stored stream back with its old messages when one of the same name is created
    again (measured: about half of delete-then-create cycles), and a stale event then
    reaches the next test's listeners. Purging the re-created stream clears them.
    """
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        info = await js.stream_info(STREAM_NAME)
        if info.state.messages:
            await js.purge_stream(STREAM_NAME)
    finally:
        await nc.close()


@asynccontextmanager
async def probe_on(url: str) -> AsyncIterator[Probe]:
    nc = await nats.connect(url)
    try:
        yield Probe(nc)
    finally:
        await nc.close()
