"""REPLICAS=N: what `make dev` plans for several processes of every service."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auth.config import Settings as AuthSettings
from ticketing_common.config import DEV_JWT_KEY
from ticketing_devstack.plan import HTTP_SERVICES, MEMORY_URI, DevstackError, Plan, build_plan
from ticketing_devstack.servers import free_port


def environ(**extra: str) -> dict[str, str]:
    return {"GATEWAY_PORT": str(free_port()), "LOCALSTRIPE_PORT": str(free_port()), **extra}


@pytest.fixture
def plan_of(tmp_path: Path) -> Iterator[Callable[..., Plan]]:
    def plan(**extra: str) -> Plan:
        return build_plan(environ(**extra), run_dir=tmp_path / "run")

    yield plan


def of_kind(plan: Plan, kind: str) -> list[str]:
    return [spec.name for spec in plan.processes if spec.kind == kind]


def upstream_ports(plan: Plan) -> dict[str, list[int]]:
    conf = (plan.run_dir / "nginx.conf").read_text()
    blocks = re.findall(r"upstream svc_(\w+) \{(.*?)\}", conf, re.S)
    return {
        name: [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+);", body)]
        for name, body in blocks
    }


class TestThreeReplicas:
    def test_three_processes_of_every_http_service_each_on_its_own_port(self, plan_of) -> None:
        plan = plan_of(REPLICAS="3")
        for name in HTTP_SERVICES:
            replicas = [plan.process(n) for n in (name, f"{name}-2", f"{name}-3")]
            assert len({spec.port for spec in replicas}) == 3
            assert len({tuple(spec.argv[:-1]) for spec in replicas}) == 1
            assert all(spec.env == replicas[0].env for spec in replicas)
        ports = [spec.port for spec in plan.processes if spec.port is not None]
        assert len(ports) == len(set(ports))

    def test_the_gateway_balances_over_the_three_ports_of_each_service(self, plan_of) -> None:
        plan = plan_of(REPLICAS="3")
        upstreams = upstream_ports(plan)
        for name in HTTP_SERVICES:
            ports = [plan.process(n).port for n in (name, f"{name}-2", f"{name}-3")]
            assert upstreams[name] == ports

    def test_the_replicas_of_a_service_share_one_database_of_its_own(self, plan_of) -> None:
        plan = plan_of(REPLICAS="3")
        databases = []
        for name in ("auth", "tickets", "orders", "payments"):
            wire = plan.process(f"{name}-mongo")
            assert wire.kind == "infra"
            assert wire.argv[1:3] == ["-m", "ticketing_devstack.mongo_wire"]
            uri = f"mongodb://127.0.0.1:{wire.port}/{name}?directConnection=true"
            for replica in (name, f"{name}-2", f"{name}-3"):
                assert plan.process(replica).env["MONGO_URI"] == uri
            databases.append(wire.port)
        assert len(set(databases)) == 4
        assert "MONGO_URI" not in plan.process("client").env

    def test_three_expiration_workers_on_the_one_queue(self, plan_of) -> None:
        plan = plan_of(REPLICAS="3")
        assert of_kind(plan, "worker") == ["expiration", "expiration-2", "expiration-3"]
        assert len({plan.process(n).env["REDIS_URL"] for n in of_kind(plan, "worker")}) == 1

    def test_without_jwt_key_a_strong_key_for_the_run_that_auth_accepts(self, plan_of) -> None:
        plan = plan_of(REPLICAS="3")
        keys = {spec.env["JWT_KEY"] for spec in plan.processes if "JWT_KEY" in spec.env}
        (key,) = keys
        assert key != DEV_JWT_KEY
        # auth refuses a weak key (or the dev key) on any database but memory://.
        settings = AuthSettings(**plan.process("auth").env)
        assert key == settings.JWT_KEY
        assert plan_of(REPLICAS="3").process("auth").env["JWT_KEY"] != key

    def test_a_given_jwt_key_and_database_are_kept(self, plan_of) -> None:
        given = "k" * 40
        plan = plan_of(REPLICAS="2", JWT_KEY=given, AUTH_MONGO_URI="mongodb://db:27017/auth")
        assert plan.process("auth-2").env["JWT_KEY"] == given
        assert plan.process("auth-2").env["MONGO_URI"] == "mongodb://db:27017/auth"
        assert "auth-mongo" not in [spec.name for spec in plan.processes]
        assert "tickets-mongo" in [spec.name for spec in plan.processes]


class TestOneReplica:
    def test_default_is_one_process_each_on_memory(self, plan_of) -> None:
        plan = plan_of()
        assert of_kind(plan, "service") == list(HTTP_SERVICES)
        assert of_kind(plan, "worker") == ["expiration"]
        assert not [spec.name for spec in plan.processes if spec.name.endswith("-mongo")]
        assert plan.process("orders").env["MONGO_URI"] == MEMORY_URI
        assert plan.process("orders").env["JWT_KEY"] == DEV_JWT_KEY
        assert all(len(ports) == 1 for ports in upstream_ports(plan).values())

    @pytest.mark.parametrize("raw", ["0", "-1", "three", "99"])
    def test_replicas_that_are_not_a_count_are_refused_by_name(self, plan_of, raw: str) -> None:
        with pytest.raises(DevstackError, match="REPLICAS"):
            plan_of(REPLICAS=raw)
