"""The base and the production overlay, as kustomize renders them, are valid Kubernetes,
and the workloads are shaped as SPEC.md §7 says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ticketing_testing.deployment import (
    HTTP_SERVICES,
    K8S,
    MONGO_SERVICES,
    ROOT,
    SERVICES,
    WORKER,
    Manifests,
    containers,
    kustomize,
    only_container,
)

# The newest schema kubernetes-validate bundles, and an older one still common on
# development clusters.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def kubernetes_validate(files: list[Path]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "kubernetes_validate", "--strict"]
    for version in KUBERNETES_VERSIONS:
        args += ["-k", version]
    return subprocess.run(
        [*args, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


class TestSchemas:
    def test_the_rendered_base_passes_strict_validation(
        self, manifests: Manifests, tmp_path: Path
    ) -> None:
        rendered = tmp_path / "rendered.yaml"
        rendered.write_text(manifests.rendered)
        result = kubernetes_validate([rendered])
        assert result.returncode == 0, result.stdout + result.stderr
        # Unknown kinds only warn; every document must have been checked against a schema.
        lines = result.stdout.splitlines()
        assert not [line for line in lines if not line.startswith("INFO ")], result.stdout
        passed = [line for line in lines if " passed for resource " in line]
        assert len(passed) == len(manifests.docs) * len(KUBERNETES_VERSIONS)

    def test_the_rendered_production_overlay_passes_strict_validation(self, tmp_path: Path) -> None:
        rendered = tmp_path / "production.yaml"
        rendered.write_text(kustomize(ROOT / "infra" / "production"))
        result = kubernetes_validate([rendered])
        assert result.returncode == 0, result.stdout + result.stderr
        assert not [line for line in result.stdout.splitlines() if not line.startswith("INFO ")]

    def test_strict_validation_rejects_a_misspelled_field(self, tmp_path: Path) -> None:
        original = (K8S / "auth-depl.yaml").read_text()
        broken = tmp_path / "auth-depl.yaml"
        broken.write_text(original.replace("readinessProbe:", "readynessProbe:", 1))
        result = kubernetes_validate([broken])
        assert result.returncode != 0
        assert "readynessProbe" in result.stdout


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


class TestRestrictedPods:
    """The `restricted` Pod Security Standard, for our services and the backing stores."""

    def test_every_pod_runs_as_non_root_with_the_runtime_default_seccomp_profile(
        self, manifests: Manifests
    ) -> None:
        for workload in manifests.workloads():
            pod = pod_spec(workload).get("securityContext", {})
            for container in containers(workload):
                own = container.get("securityContext", {})
                name = f"{workload['metadata']['name']}/{container['name']}"
                assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
                user = own.get("runAsUser", pod.get("runAsUser"))
                assert isinstance(user, int) and user > 0, name
                seccomp = own.get("seccompProfile", pod.get("seccompProfile", {}))
                assert seccomp.get("type") == "RuntimeDefault", name

    def test_no_container_can_escalate_or_keep_a_capability(self, manifests: Manifests) -> None:
        for workload in manifests.workloads():
            assert not pod_spec(workload).get("hostNetwork")
            for container in containers(workload):
                own = container["securityContext"]
                name = f"{workload['metadata']['name']}/{container['name']}"
                assert own["allowPrivilegeEscalation"] is False, name
                assert own["capabilities"] == {"drop": ["ALL"]}, name
                assert not own.get("privileged"), name

    def test_every_container_has_cpu_and_memory_requests_and_limits(
        self, manifests: Manifests
    ) -> None:
        for workload in manifests.workloads():
            for container in containers(workload):
                resources = container["resources"]
                for bound in ("requests", "limits"):
                    assert set(resources[bound]) == {"cpu", "memory"}, container["name"]

    def test_service_pods_run_as_the_image_user(
        self, manifests: Manifests, dockerfiles: dict[str, Any]
    ) -> None:
        # The Dockerfile gives the user as uid:gid; runAsNonRoot needs it numeric.
        for service in SERVICES:
            workload = manifests.named("Deployment", f"{service}-depl")
            pod = pod_spec(workload)["securityContext"]
            for stage in ("dev", "runtime"):
                user = dockerfiles[service].stage(stage).last("USER")
                assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}", (service, stage)


class TestWorkloads:
    @pytest.mark.parametrize("service", HTTP_SERVICES)
    def test_http_services_run_two_replicas(self, manifests: Manifests, service: str) -> None:
        workload = manifests.named("Deployment", f"{service}-depl")
        assert workload["spec"]["replicas"] == 2
        # The manifest says why that is safe.
        text = (K8S / f"{service}-depl.yaml").read_text()
        assert "Two replicas are safe" in text

    def test_the_workers_run_two_replicas_each_probed_under_its_own_pod_name(
        self, manifests: Manifests
    ) -> None:
        workload = manifests.named("Deployment", f"{WORKER}-depl")
        assert workload["spec"]["replicas"] == 2
        # WORKER_NAME (its health key) left to the pod's host name, its own per pod.
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert "WORKER_NAME" not in [var["name"] for var in container.get("env", [])]
        assert container["livenessProbe"]["exec"]["command"][-2:] == [
            "--check",
            "expiration.worker.WorkerSettings",
        ]

    @pytest.mark.parametrize("service", MONGO_SERVICES)
    def test_each_service_has_its_own_mongodb_on_a_volume(
        self, manifests: Manifests, service: str
    ) -> None:
        statefulset = manifests.named("StatefulSet", f"{service}-mongo")
        assert statefulset["spec"]["serviceName"] == f"{service}-mongo-srv"
        container = only_container(statefulset)
        assert container["image"].startswith("mongo:")
        assert mounts(container) == {"data": "/data/db"}
        assert claim_names(statefulset) == {"data"}

    def test_nats_runs_jetstream_with_its_store_on_a_volume(self, manifests: Manifests) -> None:
        statefulset = manifests.named("StatefulSet", "nats")
        container = only_container(statefulset)
        assert container["image"].startswith("nats:2.")
        args = container["args"]
        assert "-js" in args and args[args.index("-sd") + 1] == "/data"
        assert mounts(container) == {"data": "/data", "config": "/etc/nats"}
        assert claim_names(statefulset) == {"data"}
        monitoring = args[args.index("-m") + 1]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"].split("?")[0] == "/healthz"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert str(ports[get["port"]]) == monitoring

    def test_redis_persists_append_only_on_a_volume(self, manifests: Manifests) -> None:
        statefulset = manifests.named("StatefulSet", "expiration-redis")
        container = only_container(statefulset)
        args = container["args"]
        assert args[args.index("--appendonly") + 1] == "yes"
        assert mounts(container)["data"] == args[args.index("--dir") + 1]
        assert claim_names(statefulset) == {"data"}


def mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}


def claim_names(statefulset: dict[str, Any]) -> set[str]:
    return {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
