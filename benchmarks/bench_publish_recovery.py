"""How soon awaited publishes succeed again after a broker restart.

Run: `.venv/bin/python benchmarks/bench_publish_recovery.py [ROUNDS]`. Starts its own
nats-server (file store), publishes continuously through `EventBus`, restarts the server
(same port and store) each round and reports the time from the server accepting
connections again until the next PubAck, and the longest a single publish waited.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time

from ticketing_common.events import EventBus, TicketCreatedEvent
from ticketing_devstack.servers import NatsServer
from ticketing_testing import random_id
from ticketing_testing.events import event_settings


def ticket() -> TicketCreatedEvent:
    return TicketCreatedEvent(
        id=random_id(), version=0, title="bench", price="19.99", user_id=random_id()
    )


async def round_trip(server: NatsServer, bus: EventBus) -> tuple[float, float]:
    """Restart the server under a stream of publishes; (recovery, longest publish) in s."""
    acks: list[float] = []
    longest = 0.0
    back = float("inf")  # when the restarted server accepts connections
    recovered = asyncio.Event()
    stop = asyncio.Event()

    async def publisher() -> None:
        nonlocal longest
        while not stop.is_set():
            started = time.perf_counter()
            await bus.publish(ticket())
            now = time.perf_counter()
            longest = max(longest, now - started)
            acks.append(now)
            if now >= back:
                recovered.set()

    task = asyncio.create_task(publisher())
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(server.start)  # returns once the port accepts connections
    back = time.perf_counter()
    await recovered.wait()
    recovery = next(t for t in acks if t >= back) - back
    stop.set()
    await task
    return recovery, longest


async def main(rounds: int) -> None:
    # The event layer warns about every failed reconnect; the outage here is on purpose.
    logging.getLogger("ticketing").setLevel(logging.ERROR)
    server = NatsServer()
    server.start()
    try:
        # Production's publish timeout (30 s), so no publish gives up during the outage.
        bus = EventBus("tickets", event_settings(server.url, PUBLISH_TIMEOUT_SECONDS=30.0))
        await bus.connect()
        results = [await round_trip(server, bus) for _ in range(rounds)]
        await bus.close()
    finally:
        server.cleanup()
    recoveries = [r for r, _ in results]
    print(f"broker restarts: {rounds} (stopped 1 s each), nats-server {server.command()[0]}")
    print(
        f"first PubAck after the restart: median {statistics.median(recoveries):.2f} s, "
        f"max {max(recoveries):.2f} s"
    )
    print(f"longest single publish (outage included): {max(w for _, w in results):.2f} s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
