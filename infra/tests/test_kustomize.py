"""The manifests as kustomize renders them: the development base (`kubectl apply -k
infra/k8s`, what skaffold deploys) and the production overlay (`infra/production`), with
every HTTP service scalable (test_manifests.py validates both strictly)."""

from __future__ import annotations

import pytest
import yaml

from ticketing_testing.deployment import (
    HTTP_SERVICES,
    ROOT,
    Manifests,
    kustomize,
    only_container,
    resolve_env,
    settings_class,
)

PRODUCTION = ROOT / "infra" / "production"
EVENT_SERVICES = ("tickets", "orders", "payments", "expiration")


@pytest.fixture(scope="module")
def production() -> Manifests:
    rendered = kustomize(PRODUCTION)
    return Manifests(rendered, [d for d in yaml.safe_load_all(rendered) if d])


class TestBase:
    def test_every_http_service_has_a_disruption_budget_and_a_cpu_autoscaler(
        self, manifests: Manifests
    ) -> None:
        for service in HTTP_SERVICES:
            deployment = manifests.named("Deployment", f"{service}-depl")
            pdb = manifests.named("PodDisruptionBudget", f"{service}-pdb")
            assert (
                pdb["spec"]["selector"]["matchLabels"]
                == deployment["spec"]["selector"]["matchLabels"]
            )
            assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
            hpa = manifests.named("HorizontalPodAutoscaler", f"{service}-hpa")
            assert hpa["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": f"{service}-depl",
            }
            assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
            assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
            # Utilisation is measured against the request: there must be one.
            assert only_container(deployment)["resources"]["requests"]["cpu"]


class TestProduction:
    def test_nats_is_a_three_node_cluster_with_a_volume_each(self, production: Manifests) -> None:
        nats = production.named("StatefulSet", "nats")
        assert nats["spec"]["replicas"] == 3
        container = only_container(nats)
        args = container["args"]
        routes = args[args.index("--routes") + 1].split(",")
        assert routes == [f"nats://nats-{i}.nats-srv:6222" for i in range(3)]
        # JetStream needs a distinct server name per node.
        assert args[args.index("--name") + 1] == "$(POD_NAME)"
        assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
            container["env"]
        )
        assert [t["metadata"]["name"] for t in nats["spec"]["volumeClaimTemplates"]] == ["data"]
        service = production.named("Service", "nats-srv")
        assert service["spec"]["clusterIP"] == "None"  # per-pod names for the routes
        assert 6222 in {p["port"] for p in service["spec"]["ports"]}
        # Each node keeps the base's users (nats-config) and may reach the others' routes
        # through the base's default deny.
        assert args[args.index("-c") + 1] == "/etc/nats/nats.conf"
        routes_policy = production.named("NetworkPolicy", "nats-routes")["spec"]
        assert [p["port"] for r in routes_policy["ingress"] for p in r["ports"]] == [6222]
        assert [p["port"] for r in routes_policy["egress"] for p in r["ports"]] == [6222]
        pdb = production.named("PodDisruptionBudget", "nats-pdb")
        assert pdb["spec"]["maxUnavailable"] == 1  # a quorum of two stays

    def test_every_event_service_keeps_three_stream_replicas_as_a_valid_setting(
        self, production: Manifests, manifests: Manifests
    ) -> None:
        config_maps = manifests.config_maps()
        for service in EVENT_SERVICES:
            deployment = production.named("Deployment", f"{service}-depl")
            env = resolve_env(only_container(deployment), config_maps)
            assert env["STREAM_REPLICAS"] == "3"
            assert settings_class(service)(**env).STREAM_REPLICAS == 3
