"""STREAM_REPLICAS on a real three-node JetStream cluster (the production overlay's shape):
the stream is kept on every node, and with one node killed publishes still land and a
durable consumer still reads them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from ticketing_common.config import EventSettings
from ticketing_common.events import STREAM_NAME, Subjects
from ticketing_common.events.stream import ensure_stream
from ticketing_devstack.servers import NatsServer, free_port
from ticketing_testing import random_id


class ClusterNode(NatsServer):
    """One node of a JetStream cluster routed to its peers on loopback."""

    def __init__(self, name: str, cluster_port: int, routes: list[int]) -> None:
        super().__init__()
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes

    def command(self) -> list[str]:
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)
        return [
            *super().command(),
            "--name",
            self.name,
            "--cluster_name",
            "ticketing-test",
            "--cluster",
            f"nats://127.0.0.1:{self.cluster_port}",
            "--routes",
            routes,
        ]


@pytest.fixture
def cluster() -> Iterator[list[ClusterNode]]:
    cluster_ports = [free_port() for _ in range(3)]
    nodes = [ClusterNode(f"n{i}", port, cluster_ports) for i, port in enumerate(cluster_ports)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


T = TypeVar("T")

# Elections on a loaded two-core machine can take a while: generous bounds, and the test
# as a whole gets more than the default timeout.
CLUSTER_WAIT_SECONDS = 60.0
pytestmark = pytest.mark.timeout(240)


async def retrying(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """`attempt()` until it succeeds, while the cluster forms or elects a new leader."""
    deadline = asyncio.get_running_loop().time() + CLUSTER_WAIT_SECONDS
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{what}: still failing after {CLUSTER_WAIT_SECONDS}s"
                ) from exc
            await asyncio.sleep(0.5)


class TestReplicatedStream:
    async def test_three_replicas_survive_a_killed_node(self, cluster: list[ClusterNode]) -> None:
        settings = EventSettings.model_validate({"NATS_URL": cluster[0].url, "STREAM_REPLICAS": 3})
        nc = await nats.connect(servers=[node.url for node in cluster])
        try:
            js = nc.jetstream(timeout=5)
            # ensure_stream as a service runs it at start.
            await retrying(lambda: ensure_stream(js, settings), "create the stream")
            info = await js.stream_info(STREAM_NAME)
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2  # the leader and two followers

            # Kill the node that leads the stream: the other two keep a quorum.
            leader = next(node for node in cluster if node.name == info.cluster.leader)
            leader.stop(signal.SIGKILL)

            ids = [random_id() for _ in range(5)]
            for msg_id in ids:

                async def publish(msg_id: str = msg_id) -> None:
                    ack = await js.publish(
                        Subjects.ORDER_CANCELLED.value, b"{}", headers={"Nats-Msg-Id": msg_id}
                    )
                    assert ack.stream == STREAM_NAME

                await retrying(publish, "publish with the leader gone")

            sub = await retrying(
                lambda: js.pull_subscribe(
                    Subjects.ORDER_CANCELLED.value,
                    durable="cluster-test",
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                ),
                "create a durable consumer",
            )
            msgs = await sub.fetch(len(ids), timeout=10)
            assert sorted(m.header["Nats-Msg-Id"] for m in msgs if m.header) == sorted(ids)
        finally:
            await nc.close()
