"""The event layer against a real JetStream server (docs/SPEC.md §4: delivery, publishing)."""

import asyncio
import logging
from typing import Any

import pytest
from nats.aio.msg import Msg

from ticketing_common.events import (
    STREAM_NAME,
    EventBus,
    Listener,
    OrderCancelledEvent,
    Outbox,
    RetryLater,
    TicketCreatedEvent,
    TicketUpdatedEvent,
    outbox_entry,
)
from ticketing_common.mongo import connect_mongo
from ticketing_testing import random_id
from ticketing_testing.events import event_settings, eventually


def ticket(version: int = 0, price: object = "19.99") -> TicketCreatedEvent:
    return TicketCreatedEvent.model_validate(
        {
            "id": random_id(),
            "version": version,
            "title": "concert",
            "price": price,
            "userId": random_id(),
        }
    )


class Recorder(Listener[TicketCreatedEvent]):
    payload_type = TicketCreatedEvent

    def __init__(self, fail_times: int = 0, always_fail: bool = False) -> None:
        self.calls: list[TicketCreatedEvent] = []
        self.fail_times = fail_times
        self.always_fail = always_fail

    async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
        self.calls.append(data)
        if self.always_fail or len(self.calls) <= self.fail_times:
            raise RuntimeError("handler failed")


class UpdatedRecorder(Listener[TicketUpdatedEvent]):
    payload_type = TicketUpdatedEvent

    def __init__(self) -> None:
        self.calls: list[TicketUpdatedEvent] = []

    async def on_message(self, data: TicketUpdatedEvent, msg: Msg) -> None:
        self.calls.append(data)


async def open_bus(
    buses: list[EventBus], url: str, service: str, *listeners: Listener[Any], **settings: float
) -> EventBus:
    bus = EventBus(service, event_settings(url, **settings))
    await bus.connect()
    for listener in listeners:
        bus.add_listener(listener)
    await bus.start_listeners()
    buses.append(bus)
    return bus


class TestRoundTrip:
    async def test_published_event_arrives_validated_with_exact_price(self, jetstream_clean, buses):
        recorder = Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", recorder)
        event = ticket(price=19.99)
        await bus.publish(event)
        await eventually(lambda: len(recorder.calls) == 1)
        assert recorder.calls[0] == event
        assert str(recorder.calls[0].price) == "19.99"

    async def test_same_message_id_twice_is_delivered_once(self, jetstream_clean, buses):
        recorder = Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", recorder)
        event = ticket()
        first = await bus.publish(event)
        second = await bus.publish(event)
        assert first.seq == second.seq
        assert second.duplicate is True
        marker = ticket()
        await bus.publish(marker)
        await eventually(lambda: len(recorder.calls) == 2)
        await asyncio.sleep(0.3)
        assert [c.id for c in recorder.calls] == [event.id, marker.id]

    async def test_two_replicas_share_the_queue_each_event_once(self, jetstream_clean, buses):
        first, second = Recorder(), Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", first)
        await open_bus(buses, jetstream_clean, "orders", second)
        events = [ticket() for _ in range(40)]
        for event in events:
            await bus.publish(event)
        await eventually(lambda: len(first.calls) + len(second.calls) == 40)
        await asyncio.sleep(0.3)
        ids = [c.id for c in first.calls + second.calls]
        assert sorted(ids) == sorted(e.id for e in events)
        assert first.calls and second.calls

    async def test_replicas_starting_at_once_all_bind_and_share_the_queue(
        self, jetstream_clean, buses
    ):
        recorders = [Recorder() for _ in range(6)]
        opened = [EventBus("orders", event_settings(jetstream_clean)) for _ in recorders]
        buses.extend(opened)
        for bus, recorder in zip(opened, recorders, strict=True):
            await bus.connect()
            bus.add_listener(recorder)
        # Each finds no consumer, then each creates it.
        await asyncio.gather(*(bus.start_listeners() for bus in opened))
        events = [ticket() for _ in range(40)]
        for event in events:
            await opened[0].publish(event)
        await eventually(lambda: sum(len(r.calls) for r in recorders) == 40)
        await asyncio.sleep(0.3)
        ids = [c.id for r in recorders for c in r.calls]
        assert sorted(ids) == sorted(e.id for e in events)
        assert all([await bus.ready() for bus in opened])

    async def test_other_service_gets_its_own_copy(self, jetstream_clean, buses):
        orders, payments = Recorder(), Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", orders)
        await open_bus(buses, jetstream_clean, "payments", payments)
        await bus.publish(ticket())
        await eventually(lambda: len(orders.calls) == 1 and len(payments.calls) == 1)

    async def test_listeners_on_different_subjects_get_only_their_own(self, jetstream_clean, buses):
        created, updated = Recorder(), UpdatedRecorder()
        bus = await open_bus(buses, jetstream_clean, "orders", created, updated)
        new = ticket()
        changed = TicketUpdatedEvent.model_validate(
            {**new.model_dump(by_alias=True), "version": 1, "price": "25"}
        )
        await bus.publish(new)
        await bus.publish(changed)
        await eventually(lambda: len(created.calls) == 1 and len(updated.calls) == 1)
        await asyncio.sleep(0.3)
        assert created.calls == [new]
        assert updated.calls == [changed]
        info = await bus.js.consumer_info(STREAM_NAME, "orders-ticket-updated")
        assert info.config.deliver_group == "orders-ticket-updated"
        assert info.config.filter_subject == "ticket:updated"

    async def test_events_published_before_the_service_started_are_delivered(
        self, jetstream_clean, buses
    ):
        publisher = await open_bus(buses, jetstream_clean, "tickets")
        early = ticket()
        await publisher.publish(early)
        recorder = Recorder()
        await open_bus(buses, jetstream_clean, "orders", recorder)
        await eventually(lambda: recorder.calls == [early])


class TestFailures:
    async def test_failing_handler_is_redelivered_then_succeeds(self, jetstream_clean, buses):
        recorder = Recorder(fail_times=2)
        bus = await open_bus(buses, jetstream_clean, "orders", recorder)
        event = ticket()
        await bus.publish(event)
        await eventually(lambda: len(recorder.calls) == 3)
        await asyncio.sleep(1.0)
        assert len(recorder.calls) == 3
        info = await bus.js.consumer_info(STREAM_NAME, "orders-ticket-created")
        assert info.num_ack_pending == 0

    async def test_always_failing_handler_is_terminated_after_the_bound_and_logged(
        self, jetstream_clean, buses, caplog
    ):
        caplog.set_level(logging.ERROR, logger="ticketing.events")
        recorder = Recorder(always_fail=True)
        bus = await open_bus(
            buses,
            jetstream_clean,
            "orders",
            recorder,
            EVENT_RETRY_MIN_SECONDS=0.1,
            EVENT_RETRY_MAX_SECONDS=0.2,
            EVENT_GIVE_UP_SECONDS=1.0,
        )
        event = ticket()
        ack = await bus.publish(event)
        # 0.1 + 0.2 * 5 >= 1.0: the 7th delivery is the last one.
        await eventually(lambda: any("giving up" in r.message for r in caplog.records))
        calls = len(recorder.calls)
        assert calls == 7
        await asyncio.sleep(1.0)
        assert len(recorder.calls) == calls
        record = next(r for r in caplog.records if "giving up" in r.message)
        assert "ticket:created" in record.message
        assert f"seq={ack.seq} " in record.message
        assert event.id in record.message
        info = await bus.js.consumer_info(STREAM_NAME, "orders-ticket-created")
        assert info.num_ack_pending == 0

    async def test_retry_later_backs_off_without_blocking_other_events(
        self, jetstream_clean, buses
    ):
        class Waiting(Listener[TicketCreatedEvent]):
            payload_type = TicketCreatedEvent

            def __init__(self) -> None:
                self.ready: set[str] = set()
                self.done: list[str] = []

            async def on_message(self, data: TicketCreatedEvent, msg: Msg) -> None:
                if data.title == "later" and data.id not in self.ready:
                    self.ready.add(data.id)
                    raise RetryLater("replica missing")
                self.done.append(data.title)

        waiting = Waiting()
        bus = await open_bus(buses, jetstream_clean, "orders", waiting)
        later = ticket().model_copy(update={"title": "later"})
        await bus.publish(later)
        await bus.publish(ticket())
        await eventually(lambda: waiting.done == ["concert", "later"])

    async def test_invalid_payload_is_terminated_not_retried(self, jetstream_clean, buses, caplog):
        caplog.set_level(logging.ERROR, logger="ticketing.events")
        recorder = Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", recorder)
        await bus.publish_raw("ticket:created", b'{"id": "nope", "price": 1.234}', random_id())
        await bus.publish_raw("ticket:created", b"not json", random_id())
        good = ticket()
        await bus.publish(good)
        await eventually(lambda: len(recorder.calls) == 1)
        await asyncio.sleep(0.5)
        assert recorder.calls == [good]
        invalid = [r for r in caplog.records if "terminating invalid" in r.message]
        assert len(invalid) == 2
        info = await bus.js.consumer_info(STREAM_NAME, "orders-ticket-created")
        assert info.num_ack_pending == 0
        assert info.num_redelivered == 0


class TestReadiness:
    async def test_ready_only_when_every_declared_consumer_exists(self, jetstream_clean, buses):
        bus = EventBus("orders", event_settings(jetstream_clean))
        buses.append(bus)
        await bus.connect()
        bus.add_listener(Recorder())
        bus.add_listener(UpdatedRecorder())
        assert await bus.ready() is False
        await bus.start_listeners()
        assert await bus.ready() is True
        await bus.js.delete_consumer(STREAM_NAME, "orders-ticket-updated")
        assert await bus.ready() is False

    async def test_recreate_replays_the_stream_for_a_fresh_replica(self, jetstream_clean, buses):
        first = Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", first)
        events = [ticket() for _ in range(3)]
        for event in events:
            await bus.publish(event)
        await eventually(lambda: len(first.calls) == 3)
        await bus.close()
        again = Recorder()
        restarted = EventBus("orders", event_settings(jetstream_clean))
        buses.append(restarted)
        await restarted.connect()
        restarted.add_listener(again)
        await restarted.start_listeners(recreate=True)
        await eventually(lambda: len(again.calls) == 3)
        assert again.calls == events

    async def test_one_subject_twice_in_a_service_is_refused(self, jetstream_clean):
        bus = EventBus("orders", event_settings(jetstream_clean))
        bus.add_listener(Recorder())
        with pytest.raises(ValueError):
            bus.add_listener(Recorder())


class TestOutbox:
    async def test_leftover_is_published_once_by_the_republisher(self, jetstream_clean, buses):
        recorder = Recorder()
        bus = await open_bus(buses, jetstream_clean, "orders", recorder)
        mongo = await connect_mongo("memory://", "outbox-test")
        tickets = mongo.db.tickets
        event = ticket()
        # The write happened; the process died before it published.
        await tickets.insert_one({"_id": event.id, "outbox": [outbox_entry(event)]})
        outbox = Outbox(bus, [tickets])
        outbox.start(interval=0.1)
        try:
            await eventually(lambda: len(recorder.calls) == 1)
            await asyncio.sleep(0.5)
        finally:
            await outbox.stop()
        assert recorder.calls == [event]
        left = await tickets.find_one({"_id": event.id})
        assert left is not None and left["outbox"] == []

    async def test_write_and_event_leave_together_in_order(self, jetstream_clean, buses):
        created, updated = Recorder(), UpdatedRecorder()
        bus = await open_bus(buses, jetstream_clean, "orders", created, updated)
        mongo = await connect_mongo("memory://", "outbox-test")
        tickets = mongo.db.tickets
        outbox = Outbox(bus, [tickets])
        event = ticket()
        stored = await outbox.insert(tickets, {"_id": event.id, "version": 0}, [event])
        assert "outbox" not in stored
        change = TicketUpdatedEvent.model_validate(
            {**event.model_dump(by_alias=True), "version": 1}
        )
        after = await outbox.update(
            tickets, {"_id": event.id, "version": 0}, {"$inc": {"version": 1}}, [change]
        )
        assert after == {"_id": event.id, "version": 1}
        stale = await outbox.update(
            tickets, {"_id": event.id, "version": 0}, {"$inc": {"version": 1}}, [change]
        )
        assert stale is None
        await eventually(lambda: created.calls == [event] and updated.calls == [change])
        left = await tickets.find_one({"_id": event.id})
        assert left is not None and left["outbox"] == []

    async def test_other_event_types_round_trip(self, jetstream_clean, buses):
        class Cancelled(Listener[OrderCancelledEvent]):
            payload_type = OrderCancelledEvent
            got: list[OrderCancelledEvent] = []

            async def on_message(self, data: OrderCancelledEvent, msg: Msg) -> None:
                self.got.append(data)

        listener = Cancelled()
        bus = await open_bus(buses, jetstream_clean, "tickets", listener)
        event = OrderCancelledEvent.model_validate(
            {"id": random_id(), "version": 1, "ticket": {"id": random_id()}}
        )
        await bus.publish(event)
        await eventually(lambda: listener.got == [event])


class TestBrokerRestart:
    async def test_publish_during_restart_is_delivered_once_after(self, nats_server, buses):
        recorder = Recorder()
        bus = await open_bus(buses, nats_server.url, "orders", recorder, PUBLISH_TIMEOUT_SECONDS=30)
        await bus.publish(ticket())
        await eventually(lambda: len(recorder.calls) == 1)

        loop = asyncio.get_running_loop()
        nats_server.stop()
        event = ticket()
        started = loop.time()
        publishing = asyncio.create_task(bus.publish(event))
        await asyncio.sleep(1.5)
        assert not publishing.done()
        nats_server.start()
        ack = await publishing
        recovered = loop.time() - started
        assert ack.duplicate is not True
        await eventually(lambda: len(recorder.calls) == 2, timeout=20)
        await asyncio.sleep(0.5)
        assert recorder.calls[1] == event
        assert len(recorder.calls) == 2
        print(f"publish recovered {recovered - 1.5:.2f}s after the broker came back")
