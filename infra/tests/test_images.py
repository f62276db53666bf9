"""The images: what the Dockerfile installs and runs for each SERVICE, and what skaffold
builds and syncs.

No Docker engine runs here, so the Dockerfile is read as built for each service (its CMD
run by a shell with stand-ins for the programs) and what its uv steps install is read from
the lock.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ticketing_testing.deployment import (
    K8S,
    MONGO_SERVICES,
    ROOT,
    SERVICES,
    WORKER,
    Dockerfile,
    DockerIgnore,
    Manifests,
    artifact_sets,
    context_files,
    copy_args,
    glob_regex,
    kustomization_resources,
)

WORKDIR = "/app"
UID = "10001"


def spec_cmd(service: str, stage: str) -> list[str]:
    """What docs/SPEC.md §7 says an image runs; the dev one restarts on an edit of the
    sources skaffold syncs."""
    src = f"{WORKDIR}/{service}/src"
    if service == WORKER:
        watch = f"--watch {src} " if stage == "dev" else ""
        return shlex.split(f"arq {watch}{service}.worker.WorkerSettings")
    reload = f" --reload --reload-dir {src} --reload-dir {WORKDIR}/common/src"
    serve = (
        f"uvicorn {service}.app:create_app --factory --host 0.0.0.0 --port 3000"
        " --timeout-keep-alive 75"
    )
    return shlex.split(serve + (reload if stage == "dev" else ""))


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.lower().replace("_", "-"))
    return names


# Workspace members for development only (the test plugin, what `make dev` runs).
DEV_MEMBERS = ("testing", "devstack")


def project(member: str) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((ROOT / member / "pyproject.toml").read_text())
    return dict(table["project"])


def dev_tools(service: str) -> set[str]:
    """What only development installs: the root dev group's tools (pytest, ruff, mypy, ...),
    the dev-only members and ticketing-common's extras (the in-memory database), less what
    the service itself depends on (payments uses httpx at run time). None may be in its
    image."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = requirement_names(root["dependency-groups"]["dev"])
    dev |= {project(member)["name"] for member in DEV_MEMBERS}
    for extra in project("common").get("optional-dependencies", {}).values():
        dev |= requirement_names(extra)
    declared: set[str] = set()
    for member in ("common", service):
        declared |= requirement_names(project(member)["dependencies"])
    return dev - declared


def uv_command() -> list[str]:
    # The workspace's own uv (a dev dependency).
    return [os.environ.get("UV") or str(Path(sys.executable).parent / "uv")]


class TestDockerfile:
    """The one Dockerfile, as built for each SERVICE."""

    def test_runtime_is_the_default_target_with_only_the_virtualenv(
        self, dockerfiles: dict[str, Dockerfile]
    ) -> None:
        dockerfile = dockerfiles["auth"]
        assert dockerfile.stages[-1].name == "runtime", "runtime is the default target"
        chain = dockerfile.chain("runtime")
        assert chain[0].base.startswith("python:3.11-slim")
        assert [s.name for s in chain] == ["base", "runtime"], "no uv, no sources"
        copies = [copy_args(args) for s in chain for args in s.all("COPY")]
        assert copies == [({"from": "build"}, [f"{WORKDIR}/.venv"], f"{WORKDIR}/.venv")]
        assert dockerfile.stage("base").last("WORKDIR") == WORKDIR

    @pytest.mark.parametrize("stage", ["dev", "runtime"])
    @pytest.mark.parametrize("service", SERVICES)
    def test_each_image_runs_its_service_as_spec_says(
        self, dockerfiles: dict[str, Dockerfile], service: str, stage: str
    ) -> None:
        # The CMD, run by a shell with the image's environment (which keeps the build
        # argument), execs this; the dev image reloads from the sources skaffold syncs.
        assert dockerfiles[service].stage(stage).process == spec_cmd(service, stage)

    @pytest.mark.parametrize("service", SERVICES)
    def test_dependencies_install_before_the_sources_are_copied(
        self, dockerfiles: dict[str, Dockerfile], service: str
    ) -> None:
        dockerfile = dockerfiles[service]
        deps = dockerfile.stage("deps")
        copied = [copy_args(args) for args in deps.all("COPY")]
        sources = sorted(src for flags, srcs, _ in copied if "from" not in flags for src in srcs)
        assert sources == sorted(
            ["pyproject.toml", "uv.lock", "common/pyproject.toml", f"{service}/pyproject.toml"]
        )
        assert dockerfile.runs("deps")[-1] == [
            "uv", "sync", "--frozen", "--no-dev", "--package", service, "--no-install-workspace"
        ]  # fmt: skip
        assert dockerfile.runs("build")[-1] == [
            "uv", "sync", "--frozen", "--no-dev", "--package", service, "--no-editable"
        ]  # fmt: skip
        assert dockerfile.runs("dev")[len(dockerfile.runs("deps"))] == [
            "uv", "sync", "--frozen", "--no-dev", "--package", service
        ]  # fmt: skip
        # skaffold sync copies files in as the container's user: it must own the tree.
        owned = {
            dest: flags.get("chown")
            for flags, _, dest in map(copy_args, dockerfile.stage("dev").all("COPY"))
            if dest.endswith("/src")
        }
        assert owned == {"common/src": f"{UID}:{UID}", f"{service}/src": f"{UID}:{UID}"}

    def test_build_context_sends_the_sources_and_manifests_only(self) -> None:
        ignore = DockerIgnore.load(ROOT / ".dockerignore")
        for service in ("common", *SERVICES):
            assert not ignore.ignores(f"{service}/pyproject.toml")
            assert context_files(f"{service}/src", ignore), service
        for sent in ("pyproject.toml", "uv.lock", "client/src/client/templates/base.html"):
            assert not ignore.ignores(sent), sent
        for left_out in (
            ".venv/bin/python",
            ".git/HEAD",
            "auth/tests/test_routes.py",
            "auth/src/auth/__pycache__/app.cpython-311.pyc",
            "infra/k8s/auth-depl.yaml",
            "Dockerfile",
            "testing/pyproject.toml",
            "testing/src/ticketing_testing/fixtures.py",
        ):
            assert ignore.ignores(left_out), left_out


class TestInstalledPackages:
    """What the build stage's `uv sync` installs, as the lock resolves it (no Docker engine
    runs here, so the install is read from `uv export` with the same options)."""

    @pytest.mark.parametrize("service", SERVICES)
    def test_runtime_install_holds_the_service_and_no_test_or_dev_tool(
        self, dockerfiles: dict[str, Dockerfile], service: str
    ) -> None:
        sync = dockerfiles[service].runs("build")[-1]
        assert sync[:2] == ["uv", "sync"] and "--no-dev" in sync
        installed = locked_install([a for a in sync[2:] if a != "--no-editable"])
        assert {service, "ticketing-common", "arq" if service == WORKER else "uvicorn"} <= installed
        assert {"ticketing-testing", "mongomock-motor", "pytest"} <= dev_tools(service)
        assert not installed & dev_tools(service)
        # Nothing that would bring in a test runner or the in-memory database either.
        assert not [d for d in installed if d.startswith(("pytest", "mongomock"))], installed
        # uvicorn --reload and arq --watch need it: the dev image has it from the service's
        # dependencies or installs it beside them.
        extra = [c for c in dockerfiles[service].runs("dev") if c[:3] == ["uv", "pip", "install"]]
        assert "watchfiles" in installed or any("watchfiles" in c for c in extra)


def locked_install(sync_options: list[str]) -> set[str]:
    """The distributions `uv sync <options>` installs, by name, from uv.lock."""
    result = subprocess.run(
        [*uv_command(), "export", "--format", "pylock.toml", "--offline", *sync_options],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {str(p["name"]) for p in tomllib.loads(result.stdout)["packages"]}


class TestSkaffold:
    def test_skaffold_uses_a_v4beta_schema_kubectl_and_the_kustomize_base(
        self, skaffold: dict[str, Any], manifests: Manifests
    ) -> None:
        assert skaffold["apiVersion"].startswith("skaffold/v4beta")
        assert skaffold["kind"] == "Config"
        assert "kubectl" in skaffold["deploy"]
        assert skaffold["manifests"]["kustomize"]["paths"] == ["infra/k8s"]
        # The base lists every manifest of its folder and a MongoDB per service: none is
        # left out of a deploy.
        files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        mongo = {f"mongo/{s}" for s in MONGO_SERVICES}
        assert set(kustomization_resources(K8S)) == files | mongo

    @pytest.mark.parametrize(("build", "target"), [("default", "dev"), ("runtime", "runtime")])
    def test_one_artifact_per_service_built_from_the_root_dockerfile_for_it(
        self, skaffold: dict[str, Any], dockerfiles: dict[str, Dockerfile], build: str, target: str
    ) -> None:
        artifacts = {a["image"]: a for a in artifact_sets(skaffold)[build]}
        assert set(artifacts) == {f"ticketing/{s}" for s in SERVICES}
        for service in SERVICES:
            artifact = artifacts[f"ticketing/{service}"]
            assert artifact.get("context", ".") == "."
            assert artifact["docker"].get("dockerfile", "Dockerfile") == "Dockerfile"
            assert artifact["docker"]["buildArgs"] == {"SERVICE": service}
            assert artifact["docker"]["target"] == target
            dockerfiles[service].stage(target)
            assert ("sync" in artifact) == (target == "dev"), "sync only into dev images"

    @pytest.mark.parametrize("service", SERVICES)
    def test_sync_lands_python_sources_where_the_dev_image_runs_them(
        self, skaffold: dict[str, Any], dockerfiles: dict[str, Dockerfile], service: str
    ) -> None:
        (artifact,) = [
            a for a in artifact_sets(skaffold)["default"] if a["image"] == f"ticketing/{service}"
        ]
        rules = artifact["sync"]["manual"]
        dev = dockerfiles[service].stage("dev")
        # The dev image copies each tree to the same path under WORKDIR (/app).
        copied = {dest: srcs for _, srcs, dest in map(copy_args, dev.all("COPY"))}
        ignore = DockerIgnore.load(ROOT / ".dockerignore")
        for tree in ("common/src", f"{service}/src"):
            assert copied[tree] == [tree], f"{tree} is not copied to {WORKDIR}/{tree}"
            files = [f for f in context_files(tree, ignore) if f.endswith(".py")]
            for file in files:
                synced = [
                    r
                    for r in rules
                    if glob_match(r["src"], file) and r["dest"] == WORKDIR and not r.get("strip")
                ]
                assert synced, f"{file} is not synced into {WORKDIR}/{file}"
        if service == "client":
            for template in context_files("client/src/client/templates", ignore):
                assert any(glob_match(r["src"], template) for r in rules), template


def glob_match(pattern: str, path: str) -> bool:
    """skaffold's sync globs: `**/` spans folders, `*` stays within one."""
    return glob_regex(pattern).match(path) is not None
