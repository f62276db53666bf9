"""The pieces of the deployment agree with each other and with the services' code.

Ingress -> Service -> Deployment -> image -> skaffold artifact (its SERVICE build argument)
-> the Dockerfile's CMD -> the module the container runs: each link is checked here, and
the apps are built from the settings the Deployments' environment gives, so a renamed
setting, route or module fails a test instead of a pod.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ticketing_testing.deployment import (
    HTTP_SERVICES,
    ROOT,
    SECRET_VALUES,
    SERVICES,
    WORKER,
    Dockerfile,
    Manifests,
    app_paths,
    artifact_sets,
    container_port,
    containers,
    expanded_only,
    gateway_routes,
    import_attribute,
    ingress_paths,
    nginx_route,
    only_container,
    parse_dockerfile,
    served_target,
    settings_class,
    target_package,
)

# docs/SPEC.md §7, in the original's order.
SPEC_INGRESS = [
    ("/api/payments/?(.*)", "payments"),
    ("/api/users/?(.*)", "auth"),
    ("/api/tickets/?(.*)", "tickets"),
    ("/api/orders/?(.*)", "orders"),
    ("/?(.*)", "client"),
]


def package_behind_service(
    manifests: Manifests, artifacts: list[dict[str, Any]], service_name: str, port: int
) -> str:
    """The Python package a Service's traffic ends up in, following every link."""
    service = manifests.named("Service", service_name)
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {service_name} has no port {port}"
    workloads = manifests.selected_by(service)
    assert len(workloads) == 1, f"Service {service_name} selects {len(workloads)} workloads"
    container = only_container(workloads[0])
    container_port(container, ports[0]["targetPort"])
    by_image = {a["image"]: a for a in artifacts}
    docker = by_image[container["image"]]["docker"]
    path = ROOT / docker.get("dockerfile", "Dockerfile")
    dockerfile = parse_dockerfile(path, **docker.get("buildArgs", {}))
    stage = docker.get("target") or dockerfile.stages[-1].name
    return target_package(served_target(dockerfile.stage(stage).process))


class TestIngress:
    def test_ingress_has_the_spec_routes_host_class_and_regex_mode(
        self, manifests: Manifests
    ) -> None:
        (ingress,) = manifests.of_kind("Ingress")
        assert ingress["apiVersion"] == "networking.k8s.io/v1"
        assert ingress["spec"]["ingressClassName"] == "nginx"
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == "ticketing.dev"
        assert {p["pathType"] for p in rule["http"]["paths"]} == {"ImplementationSpecific"}
        assert [(p.path, p.service) for p in ingress_paths(manifests)] == [
            (path, f"{service}-srv") for path, service in SPEC_INGRESS
        ]

    @pytest.mark.parametrize("build", ["default", "runtime"])
    def test_each_ingress_path_reaches_the_service_that_serves_its_prefix(
        self, manifests: Manifests, skaffold: dict[str, Any], build: str
    ) -> None:
        artifacts = artifact_sets(skaffold)[build]
        reached = [
            (p.path, package_behind_service(manifests, artifacts, p.service, p.port))
            for p in ingress_paths(manifests)
        ]
        assert reached == SPEC_INGRESS

    @pytest.mark.parametrize("service", HTTP_SERVICES)
    def test_every_route_of_an_app_is_routed_to_that_app(
        self, manifests: Manifests, skaffold: dict[str, Any], app_of: Any, service: str
    ) -> None:
        paths = ingress_paths(manifests)
        artifacts = artifact_sets(skaffold)["default"]
        request_paths = app_paths(app_of(service))
        assert request_paths, f"{service} serves no routes"
        for request_path in request_paths:
            chosen = nginx_route(paths, request_path)
            assert chosen is not None, f"no ingress path takes {request_path}"
            reached = package_behind_service(manifests, artifacts, chosen.service, chosen.port)
            assert reached == service, f"{request_path} reaches {reached}, not {service}"

    def test_gateway_route_table_and_ingress_agree_exactly(
        self, manifests: Manifests, skaffold: dict[str, Any]
    ) -> None:
        artifacts = artifact_sets(skaffold)["default"]
        ingress = [
            (p.path, package_behind_service(manifests, artifacts, p.service, p.port))
            for p in ingress_paths(manifests)
        ]
        assert gateway_routes() == ingress

    def test_gateway_order_and_ingress_nginx_order_pick_the_same_route(
        self, manifests: Manifests
    ) -> None:
        # The gateway takes the first route in table order; ingress-nginx sorts regex
        # paths longest first. Both must choose alike for any request path.
        paths = ingress_paths(manifests)
        routes = gateway_routes()
        samples = [
            "/",
            "/tickets/new",
            "/api/users/signup",
            "/API/Orders/x",
            "/api/tickets",
            "/api/payments/",
            "/api/userz",
            "/orders/abc",
            "/api",
        ]
        for sample in samples:
            chosen = nginx_route(paths, sample)
            assert chosen is not None
            first = next(service for path, service in routes if _matches(path, sample))
            assert chosen.service == f"{first}-srv", sample


def _matches(path: str, request_path: str) -> bool:
    import re

    return re.match(path, request_path, re.IGNORECASE) is not None


class TestSettings:
    @pytest.mark.parametrize("service", SERVICES)
    def test_every_env_var_is_a_setting_and_every_required_setting_is_set(
        self, manifests: Manifests, service_env: dict[str, dict[str, str]], service: str
    ) -> None:
        fields = settings_class(service).model_fields
        # A secret's value expanded into a URL is the Deployment's, not a setting.
        deployment = manifests.named("Deployment", f"{service}-depl")
        env = dict(service_env[service])
        for name in expanded_only(only_container(deployment)):
            env.pop(name)
        assert set(env) <= set(fields), f"not settings of {service}: {set(env) - set(fields)}"
        required = {name for name, info in fields.items() if info.is_required()}
        assert required <= set(env), f"{service} misses required {required - set(env)}"

    @pytest.mark.parametrize("service", SERVICES)
    def test_the_deployment_env_builds_valid_settings(
        self, service_env: dict[str, dict[str, str]], service: str
    ) -> None:
        # Raises on a value the settings reject (a malformed URL, "yes" for a bool, ...).
        settings_class(service)(**service_env[service])

    def test_session_cookie_stays_secure_in_the_cluster(
        self, service_env: dict[str, dict[str, str]]
    ) -> None:
        # Browsers only reach ticketing.dev over https (.dev is HSTS-preloaded).
        assert settings_class("auth")(**service_env["auth"]).COOKIE_SECURE is True

    def test_secrets_are_referenced_by_the_spec_names_never_inlined(
        self, manifests: Manifests
    ) -> None:
        referenced = set()
        for workload in manifests.workloads():
            for container in containers(workload):
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        referenced.add((ref["name"], ref["key"]))
                        assert var["name"] == ref["key"]
                    else:
                        assert var["name"] not in {"JWT_KEY", "STRIPE_KEY"}, "inlined secret"
        assert referenced == set(SECRET_VALUES)
        assert manifests.of_kind("Secret") == [], "secrets are created by hand (README.md)"

    def test_client_settings_come_from_its_configmap(
        self, manifests: Manifests, service_env: dict[str, dict[str, str]]
    ) -> None:
        client = only_container(manifests.named("Deployment", "client-depl"))
        sources = {v["name"]: v.get("valueFrom", {}) for v in client["env"]}
        assert {name: "configMapKeyRef" in src for name, src in sources.items()} == {
            "API_BASE_URL": True,
            "STRIPE_JS_URL": True,
            "STRIPE_PUBLISHABLE_KEY": True,
            "METRICS_PORT": True,
        }
        env = service_env["client"]
        api = urlsplit(env["API_BASE_URL"])
        assert (api.scheme, api.hostname) == (
            "http",
            "ingress-nginx-controller.ingress-nginx.svc.cluster.local",
        )
        assert env["STRIPE_JS_URL"] == "https://js.stripe.com/v3/"
        assert env["STRIPE_PUBLISHABLE_KEY"].startswith("pk_")

    @pytest.mark.parametrize(
        ("service", "variable", "scheme", "port"),
        [
            *[
                (s, "MONGO_URI", "mongodb", 27017)
                for s in ("auth", "tickets", "orders", "payments")
            ],
            *[(s, "NATS_URL", "nats", 4222) for s in ("tickets", "orders", "payments", WORKER)],
            (WORKER, "REDIS_URL", "redis", 6379),
            ("auth", "REDIS_URL", "redis", 6379),
        ],
    )
    def test_backing_service_urls_point_at_services_in_the_manifests(
        self,
        manifests: Manifests,
        service_env: dict[str, dict[str, str]],
        service: str,
        variable: str,
        scheme: str,
        port: int,
    ) -> None:
        url = urlsplit(service_env[service][variable])
        assert url.scheme == scheme and url.port == port
        assert url.hostname is not None
        backing = manifests.named("Service", url.hostname)
        assert port in [p["port"] for p in backing["spec"]["ports"]]
        (workload,) = manifests.selected_by(backing)
        assert workload["kind"] == "StatefulSet", "state lives on a volume"
        if variable == "MONGO_URI":
            # One database server per service, named after it, holding its database.
            assert url.hostname == f"{service}-mongo-srv"
            assert url.path == f"/{service}"


class TestImagesAndPorts:
    @pytest.mark.parametrize("build", ["default", "runtime"])
    def test_deployment_images_are_exactly_the_skaffold_artifacts(
        self, manifests: Manifests, skaffold: dict[str, Any], build: str
    ) -> None:
        artifacts = artifact_sets(skaffold)[build]
        images = [a["image"] for a in artifacts]
        assert len(images) == len(set(images)), "one artifact per image"
        ours = {
            c["image"]
            for d in manifests.of_kind("Deployment")
            for c in containers(d)
            if c["image"].startswith("ticketing/")
        }
        assert ours == set(images) == {f"ticketing/{s}" for s in SERVICES}
        for service in SERVICES:
            (container,) = containers(manifests.named("Deployment", f"{service}-depl"))
            assert container["image"] == f"ticketing/{service}"
            # No command override: the image's CMD (dev or runtime) is what runs.
            assert "command" not in container and "args" not in container

    def test_third_party_images_are_pinned_to_a_version(self, manifests: Manifests) -> None:
        for workload in manifests.workloads():
            for container in containers(workload):
                image = container["image"]
                if not image.startswith("ticketing/"):
                    assert ":" in image and not image.endswith(":latest"), image

    def test_container_ports_match_service_target_ports(self, manifests: Manifests) -> None:
        for service in manifests.of_kind("Service"):
            workloads = manifests.selected_by(service)
            assert workloads, f"Service {service['metadata']['name']} selects no pods"
            for workload in workloads:
                container = only_container(workload)
                for port in service["spec"]["ports"]:
                    container_port(container, port.get("targetPort", port["port"]))

    @pytest.mark.parametrize("service", HTTP_SERVICES)
    def test_http_service_listens_on_3000_behind_a_cluster_ip_service(
        self, manifests: Manifests, service: str
    ) -> None:
        srv = manifests.named("Service", f"{service}-srv")
        assert srv["spec"].get("type", "ClusterIP") == "ClusterIP"
        assert [(p["port"], p["targetPort"]) for p in srv["spec"]["ports"]] == [(3000, 3000)]
        container = only_container(manifests.named("Deployment", f"{service}-depl"))
        # The image serves on 0.0.0.0:3000 (test_images checks its command line).
        assert [p["containerPort"] for p in container["ports"]] == [3000]

    def test_the_worker_has_no_service(self, manifests: Manifests) -> None:
        names = {s["metadata"]["name"] for s in manifests.of_kind("Service")}
        assert f"{WORKER}-srv" not in names
        assert "ports" not in only_container(manifests.named("Deployment", f"{WORKER}-depl"))


class TestProbes:
    @pytest.mark.parametrize("service", HTTP_SERVICES)
    async def test_http_probes_use_health_routes_the_app_serves(
        self, manifests: Manifests, app_of: Any, service: str
    ) -> None:
        container = only_container(manifests.named("Deployment", f"{service}-depl"))
        liveness = container["livenessProbe"]["httpGet"]
        readiness = container["readinessProbe"]["httpGet"]
        startup = container["startupProbe"]["httpGet"]
        assert (liveness["path"], readiness["path"], startup["path"]) == (
            "/healthz",
            "/readyz",
            "/healthz",
        )
        for probe in (liveness, readiness, startup):
            assert container_port(container, probe["port"]) == 3000
        # Asked without the lifespan (nothing connected): alive, and readiness is answered
        # (503 until connected), not a 404 that would keep every pod out of the Service.
        transport = httpx.ASGITransport(app=app_of(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
            assert (await http.get(liveness["path"])).status_code == 200
            assert (await http.get(readiness["path"])).status_code in (200, 503)

    def test_worker_probe_runs_arqs_check_on_the_settings_the_image_runs(
        self,
        manifests: Manifests,
        dockerfiles: dict[str, Dockerfile],
        service_env: dict[str, dict[str, str]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        container = only_container(manifests.named("Deployment", f"{WORKER}-depl"))
        runs = {served_target(dockerfiles[WORKER].stage(s).process) for s in ("dev", "runtime")}
        assert runs == {f"{WORKER}.worker.WorkerSettings"}
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["arq", "--check", *runs]
        # What arq looks up, with the container's environment, is a usable worker config.
        settings = import_attribute(runs.pop(), service_env[WORKER], monkeypatch)
        options = settings if isinstance(settings, dict) else vars(settings)
        assert options["functions"], "the worker runs no job"
        assert options["redis_settings"] is not None
        assert options.get("health_check_interval", 3600) <= 30, "a dead worker is seen late"

    def test_backing_services_have_probes(self, manifests: Manifests) -> None:
        for workload in manifests.of_kind("StatefulSet"):
            container = only_container(workload)
            assert "readinessProbe" in container and "livenessProbe" in container, workload[
                "metadata"
            ]["name"]
