"""Inside the cluster nothing trusts by default: NATS users that may publish only their
own subjects (a real nats-server runs the ConfigMap's own config), MongoDB and Redis behind
credentials from Secrets, and NetworkPolicies that deny what no service needs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from ticketing_common.events import STREAM_NAME, durable_name, ensure_stream
from ticketing_common.events.bus import EventBus
from ticketing_common.events.listener import Listener
from ticketing_common.events.payloads import OrderCreatedEvent, OrderTicketRef
from ticketing_common.events.subjects import OrderStatus, Subjects
from ticketing_devstack.servers import find_binary, free_port, wait_for_port
from ticketing_testing.deployment import (
    MONGO_SERVICES,
    SECRET_VALUES,
    Manifests,
    containers,
    only_container,
    resolve_env,
    settings_class,
)
from ticketing_testing.services import service_settings

EVENT_SERVICES = ("tickets", "orders", "payments", "expiration")
# What each service publishes, by docs/SPEC.md §4.
OWN_SUBJECTS = {
    "tickets": {Subjects.TICKET_CREATED, Subjects.TICKET_UPDATED},
    "orders": {Subjects.ORDER_CREATED, Subjects.ORDER_CANCELLED},
    "expiration": {Subjects.EXPIRATION_COMPLETE},
    "payments": {Subjects.PAYMENT_CREATED},
}


def password(service: str) -> str:
    return SECRET_VALUES[("nats-secret", f"{service.upper()}_NATS_PASSWORD")]


# --- NATS, for real ----------------------------------------------------------------------


@dataclass
class Nats:
    port: int

    def url(self, service: str | None = None, secret: str | None = None) -> str:
        if service is None:
            return f"nats://127.0.0.1:{self.port}"
        return f"nats://{service}:{secret or password(service)}@127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def nats_config(manifests: Manifests) -> str:
    config: str = manifests.config_maps()["nats-config"]["nats.conf"]
    return config


@pytest.fixture(scope="module")
def secured_nats(nats_config: str) -> Iterator[Nats]:
    """nats-server with the ConfigMap's nats.conf as the pod runs it (`-c`), the
    passwords in its environment as the StatefulSet gives them; JetStream in a scratch
    store, on a loopback port."""
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "nats.conf"
        conf.write_text(nats_config)
        port = free_port()
        env = {f"{s.upper()}_NATS_PASSWORD": password(s) for s in EVENT_SERVICES}
        server = subprocess.Popen(
            [find_binary("nats-server"), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port),
             "-js", "-sd", str(Path(folder) / "js")],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for_port(port)
            yield Nats(port)
        finally:
            server.terminate()
            server.wait(10)


async def connect(url: str, errors: list[Exception] | None = None) -> Any:
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(exc)

    return await nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=on_error)


@pytest.fixture
async def stream(secured_nats: Nats) -> AsyncIterator[None]:
    """An empty TICKETING stream, made by a service user as the services make it."""
    nc = await connect(secured_nats.url("orders"))
    js = nc.jetstream()
    await ensure_stream(js)
    await js.purge_stream(STREAM_NAME)
    yield
    await nc.close()


class TestNatsPermissions:
    async def test_tickets_publishes_ticket_created_but_not_payment_created(
        self, secured_nats: Nats, stream: None
    ) -> None:
        errors: list[Exception] = []
        nc = await connect(secured_nats.url("tickets"), errors)
        js = nc.jetstream()
        try:
            ack = await js.publish("ticket:created", b"{}", timeout=2)
            assert ack.stream == STREAM_NAME
            with pytest.raises(nats.errors.TimeoutError):
                await js.publish("payment:created", b"{}", timeout=1)
            await nc.flush()
            assert any(
                "permissions violation" in str(e).lower() and "payment:created" in str(e)
                for e in errors
            ), errors
            # Only the allowed message reached the stream.
            info = await js.stream_info(STREAM_NAME)
            assert info.state.messages == 1
        finally:
            await nc.close()

    @pytest.mark.parametrize("service", EVENT_SERVICES)
    async def test_each_user_publishes_only_its_own_subjects(
        self, secured_nats: Nats, stream: None, service: str
    ) -> None:
        nc = await connect(secured_nats.url(service))
        js = nc.jetstream()
        try:
            for subject in Subjects:
                if subject in OWN_SUBJECTS[service]:
                    await js.publish(subject.value, b"{}", timeout=2)
                else:
                    with pytest.raises(nats.errors.TimeoutError):
                        await js.publish(subject.value, b"{}", timeout=0.5)
            info = await js.stream_info(STREAM_NAME, subjects_filter=">")
            assert set(info.state.subjects or {}) == {s.value for s in OWN_SUBJECTS[service]}
        finally:
            await nc.close()

    @pytest.mark.parametrize("user", [None, "tickets", "client"])
    async def test_a_connection_without_valid_credentials_is_refused(
        self, secured_nats: Nats, user: str | None
    ) -> None:
        url = secured_nats.url() if user is None else secured_nats.url(user, "wrong-password")
        with pytest.raises((nats.errors.Error, OSError)) as refused:
            nc = await connect(url)
            await nc.close()
        assert "authorization violation" in str(refused.value).lower()

    async def test_a_service_user_creates_and_consumes_its_durable_on_the_stream(
        self, secured_nats: Nats, stream: None
    ) -> None:
        # tickets, as it runs: ensure_stream, its durable consumer, the handler's ack.
        received: asyncio.Queue[OrderCreatedEvent] = asyncio.Queue()

        class Recorder(Listener[OrderCreatedEvent]):
            payload_type = OrderCreatedEvent

            async def on_message(self, data: OrderCreatedEvent, msg: Msg) -> None:
                await received.put(data)

        tickets = EventBus(
            "tickets", service_settings(settings_class("tickets"), secured_nats.url("tickets"))
        )
        orders = EventBus(
            "orders", service_settings(settings_class("orders"), secured_nats.url("orders"))
        )
        await tickets.connect(timeout=5)
        await orders.connect(timeout=5)
        try:
            tickets.add_listener(Recorder())
            await tickets.start_listeners(recreate=True)
            assert await tickets.ready()
            event = OrderCreatedEvent(
                id="0123456789abcdef01234567",
                version=0,
                status=OrderStatus.CREATED,
                user_id="0123456789abcdef01234568",
                expires_at=datetime.now(UTC) + timedelta(minutes=15),
                ticket=OrderTicketRef(id="0123456789abcdef01234569", price=1000, version=0),
            )
            await orders.publish(event)
            assert (await asyncio.wait_for(received.get(), 5)).id == event.id
            # The ack went through: nothing is left pending on the durable.
            name = durable_name("tickets", Subjects.ORDER_CREATED)
            for _ in range(50):
                info = await tickets.js.consumer_info(STREAM_NAME, name)
                if info.num_ack_pending == 0 and info.ack_floor.stream_seq >= 1:
                    break
                await asyncio.sleep(0.1)
            assert info.num_ack_pending == 0 and info.ack_floor.stream_seq >= 1
        finally:
            await tickets.close()
            await orders.close()


class TestCredentialsInTheManifests:
    def test_only_the_event_services_hold_nats_credentials_each_its_own(
        self, manifests: Manifests
    ) -> None:
        config_maps = manifests.config_maps()
        for deployment in manifests.of_kind("Deployment"):
            service = deployment["metadata"]["labels"]["app"]
            container = only_container(deployment)
            nats_keys = {
                v["valueFrom"]["secretKeyRef"]["key"]
                for v in container.get("env", [])
                if v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "nats-secret"
            }
            env = resolve_env(container, config_maps)
            if service not in EVENT_SERVICES:
                assert nats_keys == set() and "NATS_URL" not in env, service
                continue
            assert nats_keys == {f"{service.upper()}_NATS_PASSWORD"}
            url = urlsplit(env["NATS_URL"])
            assert (url.username, url.password) == (service, password(service))

    @pytest.mark.parametrize("service", MONGO_SERVICES)
    def test_a_service_and_its_mongodb_share_that_databases_secret(
        self, manifests: Manifests, service: str
    ) -> None:
        mongo = only_container(manifests.named("StatefulSet", f"{service}-mongo"))
        env = resolve_env(mongo, {})
        secret = f"{service}-mongo-secret"
        assert env["MONGO_INITDB_ROOT_USERNAME"] == SECRET_VALUES[(secret, "MONGO_USERNAME")]
        assert env["MONGO_INITDB_ROOT_PASSWORD"] == SECRET_VALUES[(secret, "MONGO_PASSWORD")]
        app = resolve_env(only_container(manifests.named("Deployment", f"{service}-depl")), {})
        url = urlsplit(app["MONGO_URI"])
        assert (url.username, url.password) == (
            env["MONGO_INITDB_ROOT_USERNAME"],
            env["MONGO_INITDB_ROOT_PASSWORD"],
        )
        assert "authSource=admin" in url.query  # where the root user lives

    def test_redis_requires_the_password_its_clients_send(self, manifests: Manifests) -> None:
        redis = only_container(manifests.named("StatefulSet", "expiration-redis"))
        env = resolve_env(redis, {})
        args = redis["args"]
        assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
        assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]  # the readiness probe's
        for service in ("auth", "expiration"):
            app = resolve_env(only_container(manifests.named("Deployment", f"{service}-depl")), {})
            assert urlsplit(app["REDIS_URL"]).password == env["REDIS_PASSWORD"], service

    def test_no_password_is_written_into_a_manifest(self, manifests: Manifests) -> None:
        # Every credential in a URL is a $(VAR) of a secret-backed variable.
        for workload in manifests.workloads():
            for container in containers(workload):
                secret_backed = {
                    v["name"] for v in container.get("env", []) if "secretKeyRef" in v.get(
                        "valueFrom", {})
                }  # fmt: skip
                for var in container.get("env", []):
                    value = str(var.get("value", ""))
                    if "://" in value and "@" in value:
                        userinfo = urlsplit(value).netloc.rpartition("@")[0]
                        password = userinfo.partition(":")[2]
                        assert password[2:-1] in secret_backed, (var["name"], value)
                        assert password.startswith("$("), (var["name"], value)

    def test_nats_monitoring_is_not_on_the_clients_service(self, manifests: Manifests) -> None:
        service = manifests.named("Service", "nats-srv")
        assert [p["port"] for p in service["spec"]["ports"]] == [4222]
        # The probes still reach it on the pod.
        nats_container = only_container(manifests.named("StatefulSet", "nats"))
        ports = {p["name"]: p["containerPort"] for p in nats_container["ports"]}
        assert ports["monitoring"] == 8222


# --- NetworkPolicies, evaluated ----------------------------------------------------------

NAMESPACE = "default"  # where `kubectl apply -k` puts the base (no namespace is set)


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ip: str

    def has(self, labels: dict[str, str]) -> bool:
        return labels.items() <= dict(self.labels).items()


def pods_of(manifests: Manifests) -> list[Pod]:
    ours = [
        Pod(w["metadata"]["name"].removesuffix("-depl"), NAMESPACE,
            tuple(w["spec"]["template"]["metadata"]["labels"].items()), f"10.244.0.{i + 10}")
        for i, w in enumerate(manifests.workloads())
    ]  # fmt: skip
    return [
        *ours,
        Pod("ingress-controller", "ingress-nginx",
            (("app.kubernetes.io/name", "ingress-nginx"),
             ("app.kubernetes.io/component", "controller")), "10.244.1.2"),
        Pod("kube-dns", "kube-system", (("k8s-app", "kube-dns"),), "10.244.1.3"),
        Pod("prometheus", "monitoring", (("app", "prometheus"),), "10.244.1.4"),
        Pod("stranger", "other", (("app", "tickets"),), "10.244.1.5"),
        Pod("stripe", "", (), "34.1.2.3"),  # the internet
    ]  # fmt: skip


def selects(selector: dict[str, Any], pod: Pod) -> bool:
    labels = dict(pod.labels)
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        match expression["operator"]:
            case "In":
                ok = value in expression["values"]
            case "NotIn":
                ok = value not in expression["values"]
            case "Exists":
                ok = present
            case _:
                ok = not present
        if not ok:
            return False
    return True


def peer_matches(peer: dict[str, Any], pod: Pod, policy_namespace: str) -> bool:
    import ipaddress

    if "ipBlock" in peer:
        address = ipaddress.ip_address(pod.ip)
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if not pod.namespace:
        return False  # outside the cluster: only an ipBlock names it
    if "namespaceSelector" in peer:
        namespace = Pod("", "", (("kubernetes.io/metadata.name", pod.namespace),), "")
        if not selects(peer["namespaceSelector"], namespace):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), pod)


def rule_allows(rule: dict[str, Any], peers_key: str, other: Pod, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports
    ):
        return False
    peers = rule.get(peers_key)
    return not peers or any(peer_matches(p, other, NAMESPACE) for p in peers)


def admitted(
    policies: list[dict[str, Any]], pod: Pod, direction: str, other: Pod, port: int, protocol: str
) -> bool:
    """Whether `pod`'s policies let this connection out (Egress) or in (Ingress)."""
    if pod.namespace != NAMESPACE:
        return True  # not ours to restrict
    applying = [
        p for p in policies
        if selects(p["spec"]["podSelector"], pod) and direction in p["spec"]["policyTypes"]
    ]  # fmt: skip
    if not applying:
        return True
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        rule_allows(rule, peers, other, port, protocol)
        for p in applying
        for rule in p["spec"].get(key, [])
    )


PORTS = [(p, "TCP") for p in (80, 443, 3000, 4222, 6222, 8222, 9100, 6379, 27017)] + [
    (53, "UDP"),
    (53, "TCP"),
]


def connections(manifests: Manifests) -> set[tuple[str, str, int, str]]:
    """Every (from, to, port, protocol) the policies let through, where one end is ours."""
    policies = manifests.of_kind("NetworkPolicy")
    pods = pods_of(manifests)
    allowed = set()
    for source in pods:
        for target in pods:
            if source == target or NAMESPACE not in (source.namespace, target.namespace):
                continue
            for port, protocol in PORTS:
                if admitted(policies, source, "Egress", target, port, protocol) and admitted(
                    policies, target, "Ingress", source, port, protocol
                ):
                    allowed.add((source.name, target.name, port, protocol))
    return allowed


def expected_connections(manifests: Manifests) -> set[tuple[str, str, int, str]]:
    ours = [p.name for p in pods_of(manifests) if p.namespace == NAMESPACE]
    expected = {(pod, "kube-dns", 53, proto) for pod in ours for proto in ("UDP", "TCP")}
    for service in ("auth", "tickets", "orders", "payments", "client"):
        expected.add(("ingress-controller", service, 3000, "TCP"))
    expected.add(("client", "ingress-controller", 80, "TCP"))
    for service in MONGO_SERVICES:
        expected.add((service, f"{service}-mongo", 27017, "TCP"))
        expected.add(("prometheus", service, 3000, "TCP"))
    expected |= {("prometheus", s, 9100, "TCP") for s in ("client", "expiration")}
    expected |= {(s, "nats", 4222, "TCP") for s in EVENT_SERVICES}
    expected |= {(s, "expiration-redis", 6379, "TCP") for s in ("auth", "expiration")}
    expected.add(("payments", "stripe", 443, "TCP"))
    return expected


class TestNetworkPolicies:
    def test_only_the_listed_connections_are_allowed(self, manifests: Manifests) -> None:
        allowed = connections(manifests)
        expected = expected_connections(manifests)
        assert allowed - expected == set(), "allowed but not listed"
        assert expected - allowed == set(), "listed but denied"

    def test_everything_is_denied_by_default_both_ways(self, manifests: Manifests) -> None:
        deny = manifests.named("NetworkPolicy", "default-deny")["spec"]
        assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
        assert "ingress" not in deny and "egress" not in deny

    def test_without_the_default_deny_a_database_could_reach_anything(
        self, manifests: Manifests
    ) -> None:
        # The stores' policies bound only who comes in; the default deny bounds what they
        # send (a taken-over mongod calling out).
        base = {"default-deny", "allow-dns"}
        open_docs = [d for d in manifests.docs if d["metadata"]["name"] not in base]
        leaky = connections(Manifests(manifests.rendered, open_docs))
        assert ("payments-mongo", "stripe", 443, "TCP") in leaky
        assert ("payments-mongo", "stripe", 443, "TCP") not in connections(manifests)

    def test_no_service_but_payments_reaches_the_internet(self, manifests: Manifests) -> None:
        allowed = connections(manifests)
        assert {s for s, t, _, _ in allowed if t == "stripe"} == {"payments"}
        # And payments nothing private on 443.
        policies = manifests.of_kind("NetworkPolicy")
        payments = next(p for p in pods_of(manifests) if p.name == "payments")
        inside = Pod("somewhere", "", (), "10.0.0.9")
        assert not admitted(policies, payments, "Egress", inside, 443, "TCP")
