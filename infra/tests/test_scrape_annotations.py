"""Every workload of ours says where Prometheus scrapes it (docs/OPERATIONS.md): the app's
port 3000, or for the client and the worker the port their METRICS_PORT opens."""

from __future__ import annotations

import pytest

from ticketing_testing.deployment import (
    SERVICES,
    load_manifests,
    only_container,
    resolve_env,
)

# Served by the app on its own port, or (client, worker) on METRICS_PORT.
OWN_METRICS_PORT = {"client", "expiration"}


@pytest.mark.parametrize("service", SERVICES)
def test_workload_is_annotated_for_scraping_where_it_serves_metrics(service: str) -> None:
    manifests = load_manifests()
    workload = manifests.named("Deployment", f"{service}-depl")
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path") == "/metrics"
    container = only_container(workload)
    port = int(annotations["prometheus.io/port"])
    env = resolve_env(container, manifests.config_maps())
    if service in OWN_METRICS_PORT:
        assert env.get("METRICS_PORT") == str(port)
        assert port != 3000  # the client's 3000 is what the Ingress reaches
    else:
        assert port == 3000
        assert "METRICS_PORT" not in env
