"""Fixtures over the deployment files; they only parse, so they are session-wide."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from ticketing_testing.deployment import (
    ROOT,
    SERVICES,
    Dockerfile,
    Manifests,
    load_manifests,
    load_skaffold,
    only_container,
    parse_dockerfile,
    resolve_env,
    settings_class,
)

# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def manifests() -> Manifests:
    return load_manifests()


@pytest.fixture(scope="session")
def skaffold() -> dict[str, Any]:
    return load_skaffold()


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    """The one Dockerfile as each service's image builds it (`--build-arg SERVICE=<svc>`)."""
    return {s: parse_dockerfile(ROOT / "Dockerfile", SERVICE=s) for s in SERVICES}


@pytest.fixture(scope="session")
def deployments(manifests: Manifests) -> dict[str, dict[str, Any]]:
    """Each service's Deployment, found by the name docs/SPEC.md §7 gives it."""
    return {s: manifests.named("Deployment", f"{s}-depl") for s in SERVICES}


@pytest.fixture(scope="session")
def service_env(
    manifests: Manifests, deployments: dict[str, dict[str, Any]]
) -> dict[str, dict[str, str]]:
    config_maps = manifests.config_maps()
    return {s: resolve_env(only_container(d), config_maps) for s, d in deployments.items()}


@pytest.fixture(scope="session")
def app_of(service_env: dict[str, dict[str, str]]) -> Any:
    """`app_of(service)`: its app, built from the settings its Deployment's env gives."""
    built: dict[str, Any] = {}

    def app_of(service: str) -> Any:
        if service not in built:
            settings = settings_class(service)(**service_env[service])
            create_app = importlib.import_module(f"{service}.app").create_app
            built[service] = create_app(settings)
        return built[service]

    return app_of
