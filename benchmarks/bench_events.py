"""Event layer throughput on this machine: awaited publishes, outbox writes, consumption.

Run: `.venv/bin/python benchmarks/bench_events.py [N]`. Starts its own nats-server.
"""

from __future__ import annotations

import asyncio
import sys
import time

from nats.aio.msg import Msg

from ticketing_common.events import EventBus, Listener, Outbox, TicketCreatedEvent
from ticketing_common.mongo import connect_mongo
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.events import event_settings


class Counter(Listener[TicketCreatedEvent]):
    payload_type = TicketCreatedEvent

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.expected = expected
        self.done = asyncio.Event()

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


def ticket() -> TicketCreatedEvent:
    return TicketCreatedEvent(
        id=random_id(), version=0, title="bench", price="19.99", user_id=random_id()
    )


async def main(n: int) -> None:
    server = NatsServer()
    server.start()
    try:
        bus = EventBus("tickets", event_settings(server.url))
        await bus.connect()
        events = [ticket() for _ in range(n)]
        started = time.perf_counter()
        for event in events:
            await bus.publish(event)
        publish = n / (time.perf_counter() - started)

        mongo = await connect_mongo("memory://", "bench")
        outbox = Outbox(bus, [mongo.db.tickets])
        started = time.perf_counter()
        for event in (ticket() for _ in range(n)):
            await outbox.insert(mongo.db.tickets, {"_id": event.id}, [event])
        outbox_rate = n / (time.perf_counter() - started)

        counter = Counter(2 * n)
        consumer = EventBus("orders", event_settings(server.url))
        await consumer.connect()
        consumer.add_listener(counter)
        started = time.perf_counter()
        await consumer.start_listeners()
        await asyncio.wait_for(counter.done.wait(), timeout=300)
        consume = 2 * n / (time.perf_counter() - started)
        print(f"events: {n} (+{n} through the outbox), nats-server {server.command()[0]}")
        print(f"awaited publish:         {publish:8.0f} events/s")
        print(f"outbox insert + publish: {outbox_rate:8.0f} events/s (in-memory Mongo)")
        print(f"consume (validate+ack):  {consume:8.0f} events/s (one durable, one subscriber)")
        await consumer.close()
        await bus.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
