"""What `make dev` runs: every process's command line, environment and readiness probe.

`build_plan` reads the environment `make dev` runs in and the checkout (which services are
built), picks ports and writes the gateway's config into a fresh run folder. The result is
a plain table, so tests can start the whole stack (`Stack`) or single processes with the
very same commands (`ProcessSpec.popen`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from ticketing_common.config import DEV_JWT_KEY
from ticketing_devstack.manifests import K8S_DIR, EnvVar, ManifestError, deployment_env
from ticketing_devstack.nginx import TEMPLATE, nginx_command, write_nginx_conf
from ticketing_devstack.routes import ROUTES_FILE, Route, is_built, load_routes, repo_root
from ticketing_devstack.servers import (
    LocalStripeServer,
    NatsServer,
    RedisServer,
    find_binary,
    free_port,
)

# The HTTP services in start order (what each reads: its Deployment, `manifests.py`).
HTTP_SERVICES = ("auth", "tickets", "orders", "payments", "client")
WORKER = "expiration"
WORKER_SETTINGS = "expiration.worker.WorkerSettings"

DEFAULT_GATEWAY_PORT = 8080
DEFAULT_LOCALSTRIPE_PORT = 8420
DEV_STRIPE_KEY = "sk_test_dev"
DEV_STRIPE_PUBLISHABLE_KEY = "pk_test_dev"
REAL_STRIPE_JS_URL = "https://js.stripe.com/v3/"
# What localstripe signs its webhooks with unless STRIPE_WEBHOOK_SECRET is set (with a
# real STRIPE_KEY, set it to what `stripe listen` prints).
DEV_STRIPE_WEBHOOK_SECRET = "whsec_dev"
STRIPE_WEBHOOK_PATH = "/api/payments/webhooks/stripe"
MEMORY_URI = "memory://"
# REPLICAS=N (default 1): N processes of every HTTP service and N workers. With N > 1 the
# processes of a service share one database: a `mongo_wire` stand-in per service database
# (each its own process, as each service has its own MongoDB), instead of `memory://`.
MAX_REPLICAS = 16
MONGO_WIRE_MODULE = "ticketing_devstack.mongo_wire"
# How every HTTP service's uvicorn runs (after `--factory`, before host and port).
# `--timeout-keep-alive` outlasts the gateway's 60 s keep-alive of upstream connections (and
# ingress-nginx's): the proxy, not uvicorn, closes an idle one, so nginx never sends a
# request on a connection uvicorn is closing (a POST is then not retried: 503).
UVICORN_FLAGS = (
    *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
    *("--timeout-keep-alive", "75"),
)
# The gateway's address as the services see it.
GATEWAY_PROXIES = "127.0.0.1/32,::1/128"


class DevstackError(RuntimeError):
    """The stack cannot be planned or started; the message says what to do."""


class HttpProbe(BaseModel):
    """Ready when `url` answers 200."""

    kind: Literal["http"] = "http"
    url: str


class TcpProbe(BaseModel):
    """Ready when something accepts connections on the port."""

    kind: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int


class CommandProbe(BaseModel):
    """Ready when the command exits 0 (arq's own health check for the worker)."""

    kind: Literal["command"] = "command"
    argv: list[str]
    env: dict[str, str] = {}


Probe = Annotated[HttpProbe | TcpProbe | CommandProbe, Field(discriminator="kind")]

Kind = Literal["infra", "service", "worker", "gateway"]


class ProcessSpec(BaseModel):
    """One process of the stack: run `argv` with `env` set on top of the inherited environment."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    argv: list[str]
    env: dict[str, str] = {}
    port: int | None = None
    url: str | None = None
    probe: Probe | None = None
    # With REPLICAS above 1: the service this process is one replica of.
    replica_of: str | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The full environment: `base` (default: this process's) plus the spec's variables."""
        return {**(os.environ if base is None else base), **self.env}

    def procfile_command(self, inherited: Mapping[str, str]) -> str:
        """A Procfile command: `exec env` with the variables the inherited ones lack."""
        assignments = [
            shlex.quote(f"{key}={value}")
            for key, value in self.env.items()
            if inherited.get(key) != value
        ]
        prefix = f"env {' '.join(assignments)} " if assignments else ""
        return f"exec {prefix}{self.command}"

    def popen(
        self,
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = subprocess.STDOUT,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start this process alone, in its own session (stop it with `stop_process`)."""
        return subprocess.Popen(
            self.argv,
            env=self.environ(env),
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=True,
        )


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> int:
    """Signal the process group of a `ProcessSpec.popen` process; SIGKILL it after `timeout`."""
    for signum in (sig, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


class Plan(BaseModel):
    """The whole stack: its processes in start order, the gateway and the shared servers."""

    root: Path
    run_dir: Path
    gateway_url: str
    nats_url: str
    redis_url: str
    localstripe_url: str | None
    services: list[str]
    missing: list[str]
    processes: list[ProcessSpec]
    warnings: list[str] = []

    def process(self, name: str) -> ProcessSpec:
        for spec in self.processes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def procfile(self, inherited: Mapping[str, str]) -> str:
        lines = [f"{spec.name}: {spec.procfile_command(inherited)}" for spec in self.processes]
        return "# Generated by ticketing_devstack for one run of `make dev`.\n" + (
            "\n".join(lines) + "\n"
        )


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name) or None


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _env(environ, name)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise DevstackError(f"{name}={raw!r} is not a port number (1-65535)")
    return port


def ensure_port_free(port: int, variable: str) -> None:
    with socket.socket() as sock:
        # As nginx does: a port kept only by connections in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DevstackError(
                f"port {port} ({variable}) is in use: stop what listens there or set {variable}"
            ) from None


class _Ports:
    """Distinct free ports, never one of those reserved."""

    def __init__(self, reserved: set[int]) -> None:
        self.taken = set(reserved)

    def pick(self) -> int:
        while True:
            port = free_port()
            if port not in self.taken:
                self.taken.add(port)
                return port


def built_services(root: Path) -> list[str]:
    """The HTTP services whose `app.py` defines `create_app`, and the worker when built."""
    services = [name for name in HTTP_SERVICES if is_built(root, name)]
    if is_built(root, WORKER, "worker", "WorkerSettings"):
        services.append(WORKER)
    return services


@dataclass(frozen=True)
class _Inputs:
    """What `make dev` takes from its environment."""

    environ: Mapping[str, str]
    gateway_port: int
    localstripe_port: int
    stripe_key: str | None
    jwt_key: str
    replicas: int = 1

    @property
    def use_localstripe(self) -> bool:
        return self.stripe_key is None

    @property
    def webhook_secret(self) -> str:
        return self.get("STRIPE_WEBHOOK_SECRET") or DEV_STRIPE_WEBHOOK_SECRET

    def get(self, name: str) -> str | None:
        return _env(self.environ, name)


def _replicas(environ: Mapping[str, str]) -> int:
    raw = _env(environ, "REPLICAS")
    if raw is None:
        return 1
    try:
        replicas = int(raw)
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= MAX_REPLICAS:
        raise DevstackError(f"REPLICAS={raw!r} is not a number of replicas (1-{MAX_REPLICAS})")
    return replicas


def _jwt_key(environ: Mapping[str, str], replicas: int) -> str:
    """JWT_KEY, else the dev key on `memory://` (one replica), else a random key for this
    run: the services refuse the public dev key on a database that is not `memory://`."""
    key = _env(environ, "JWT_KEY")
    if key is not None:
        return key
    return DEV_JWT_KEY if replicas == 1 else secrets.token_urlsafe(32)


def replica_name(service: str, index: int) -> str:
    """`auth`, `auth-2`, `auth-3`, ...: the first replica keeps the service's own name."""
    return service if index == 1 else f"{service}-{index}"


def build_plan(
    environ: Mapping[str, str] | None = None,
    *,
    root: Path | None = None,
    run_dir: Path | None = None,
) -> Plan:
    """Plan the stack for `environ` (default: this process's environment).

    Creates the run folder (default: a new one under `<root>/.run/`) holding the gateway's
    config and temporary files and, unless `NATS_URL` is set, NATS's store; the runner
    removes it when the stack stops.
    """
    environ = os.environ if environ is None else environ
    root = root or repo_root()
    replicas = _replicas(environ)
    inputs = _Inputs(
        environ=environ,
        gateway_port=_port(environ, "GATEWAY_PORT", DEFAULT_GATEWAY_PORT),
        localstripe_port=_port(environ, "LOCALSTRIPE_PORT", DEFAULT_LOCALSTRIPE_PORT),
        stripe_key=_env(environ, "STRIPE_KEY"),
        jwt_key=_jwt_key(environ, replicas),
        replicas=replicas,
    )
    if inputs.use_localstripe and inputs.gateway_port == inputs.localstripe_port:
        raise DevstackError("GATEWAY_PORT and LOCALSTRIPE_PORT must differ")
    ensure_port_free(inputs.gateway_port, "GATEWAY_PORT")
    if inputs.use_localstripe:
        ensure_port_free(inputs.localstripe_port, "LOCALSTRIPE_PORT")
    nginx = find_binary("nginx")
    routes = load_routes(root / ROUTES_FILE)

    created = run_dir is None
    if run_dir is None:
        (root / ".run").mkdir(exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="dev-", dir=root / ".run"))
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _plan(inputs, root, run_dir, routes, nginx)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _plan(inputs: _Inputs, root: Path, run_dir: Path, routes: list[Route], nginx: str) -> Plan:
    services = built_services(root)
    ports = _Ports({inputs.gateway_port, inputs.localstripe_port})
    base = {"PYTHONUNBUFFERED": "1"}
    processes: list[ProcessSpec] = []
    warnings: list[str] = []
    if inputs.get("JWT_KEY") is None and inputs.replicas == 1:
        warnings.append("JWT_KEY is not set: using the dev-only default key (never deploy it)")
    if not inputs.use_localstripe and inputs.get("STRIPE_PUBLISHABLE_KEY") is None:
        warnings.append(
            "STRIPE_KEY is set but STRIPE_PUBLISHABLE_KEY is not: the payment form needs "
            "the matching pk_... key"
        )

    nats_url = inputs.get("NATS_URL")
    if nats_url is None:
        nats = NatsServer(ports.pick(), store_dir=str(run_dir / "nats"))
        nats_url = nats.url
        processes.append(_server("nats", nats.command(), nats.port, nats.url))
    redis_url = inputs.get("REDIS_URL")
    if redis_url is None:
        redis = RedisServer(ports.pick())
        redis_url = redis.url
        processes.append(_server("redis", redis.command(), redis.port, redis.url))
    gateway_url = f"http://127.0.0.1:{inputs.gateway_port}"
    localstripe_url: str | None = None
    if inputs.use_localstripe:
        port = inputs.localstripe_port
        localstripe_url = f"http://127.0.0.1:{port}"
        # localstripe sends its signed events to payments through the gateway, as Stripe
        # would through the ingress.
        webhook = (gateway_url + STRIPE_WEBHOOK_PATH, inputs.webhook_secret)
        argv = LocalStripeServer(port, webhook=webhook).command()
        processes.append(
            ProcessSpec(
                name="localstripe",
                kind="infra",
                argv=argv,
                env=base,
                port=port,
                url=localstripe_url,
                probe=HttpProbe(url=f"{localstripe_url}/js.stripe.com/v3/"),
            )
        )

    upstreams: dict[str, list[int]] = {}
    uvicorn = find_binary("uvicorn") if services else ""
    for name in HTTP_SERVICES:
        if name not in services:
            continue
        env = base | _service_env(
            root, name, inputs, nats_url, redis_url, localstripe_url, gateway_url
        )
        if inputs.replicas > 1 and env.get("MONGO_URI") == MEMORY_URI:
            wire = _mongo_wire(name, ports.pick(), base)
            processes.append(wire)
            env["MONGO_URI"] = f"mongodb://127.0.0.1:{wire.port}/{name}?directConnection=true"
        # uvloop and httptools named, not left to uvicorn's `auto` (which falls back to
        # asyncio and h11 silently when they are missing); no access log: one line per
        # request, formatted by the service and copied by the runner, was about a tenth of
        # a purchase's CPU (docs/benchmarks.md), and the gateway logs no requests either.
        argv = [uvicorn, f"{name}.app:create_app", "--factory", *UVICORN_FLAGS]
        for index in range(1, inputs.replicas + 1):
            port = ports.pick()
            upstreams.setdefault(name, []).append(port)
            url = f"http://127.0.0.1:{port}"
            processes.append(
                ProcessSpec(
                    name=replica_name(name, index),
                    kind="service",
                    argv=[*argv, "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    port=port,
                    url=url,
                    probe=HttpProbe(url=f"{url}/readyz"),
                    replica_of=name if inputs.replicas > 1 else None,
                )
            )
    if WORKER in services:
        arq = find_binary("arq")
        env = base | _service_env(
            root, WORKER, inputs, nats_url, redis_url, localstripe_url, gateway_url
        )
        # Workers share the Redis queue: whichever takes an `order:created` schedules the
        # job under the order's id, so it is queued once (expiration.jobs).
        # Each has a name of its own (its health key's), as each pod has its host name.
        for index in range(1, inputs.replicas + 1):
            name = replica_name(WORKER, index)
            worker_env = {**env, "WORKER_NAME": name}
            processes.append(
                ProcessSpec(
                    name=name,
                    kind="worker",
                    argv=[arq, WORKER_SETTINGS],
                    env=worker_env,
                    probe=CommandProbe(argv=[arq, "--check", WORKER_SETTINGS], env=worker_env),
                    replica_of=WORKER if inputs.replicas > 1 else None,
                )
            )

    conf = write_nginx_conf(
        run_dir,
        routes=routes,
        upstreams=upstreams,
        listen_port=inputs.gateway_port,
        template=root / TEMPLATE,
    )
    checked = subprocess.run(
        nginx_command(nginx, run_dir, conf, test=True), capture_output=True, text=True
    )
    if checked.returncode != 0:
        raise DevstackError(f"nginx rejects the generated {conf}: {checked.stderr.strip()}")
    processes.append(
        ProcessSpec(
            name="gateway",
            kind="gateway",
            argv=nginx_command(nginx, run_dir, conf),
            port=inputs.gateway_port,
            url=gateway_url,
            probe=TcpProbe(port=inputs.gateway_port),
        )
    )
    return Plan(
        root=root,
        run_dir=run_dir,
        gateway_url=gateway_url,
        nats_url=nats_url,
        redis_url=redis_url,
        localstripe_url=localstripe_url,
        services=services,
        missing=[name for name in (*HTTP_SERVICES, WORKER) if name not in services],
        processes=processes,
        warnings=warnings,
    )


def _server(name: str, argv: list[str], port: int, url: str) -> ProcessSpec:
    return ProcessSpec(
        name=name, kind="infra", argv=argv, port=port, url=url, probe=TcpProbe(port=port)
    )


def _mongo_wire(service: str, port: int, env: dict[str, str]) -> ProcessSpec:
    """The database the replicas of `service` share (`ticketing_devstack.mongo_wire`)."""
    argv = [sys.executable, "-m", MONGO_WIRE_MODULE, "--host", "127.0.0.1", "--port", str(port)]
    return ProcessSpec(
        name=f"{service}-mongo",
        kind="infra",
        argv=argv,
        env=env,
        port=port,
        url=f"mongodb://127.0.0.1:{port}/?directConnection=true",
        probe=TcpProbe(port=port),
    )


def redis_database(url: str, db: int) -> str:
    """`url` with database `db` (its path), whatever database it named."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass(frozen=True)
class _Local:
    """What a variable's local value may depend on."""

    service: str
    inputs: _Inputs
    nats_url: str
    redis_url: str
    localstripe_url: str | None
    gateway_url: str
    cluster_value: str | None  # the Deployment's literal value, if it has one

    def given(self, name: str) -> dict[str, str]:
        """`name` as make dev's environment sets it; unset, the setting's default."""
        value = self.inputs.get(name)
        return {} if value is None else {name: value}


def _redis_url(at: _Local) -> dict[str, str]:
    # The database the Deployment's URL names (auth's limits in 1); its 0 is the stack's
    # Redis as given, whichever database REDIS_URL names.
    path = urlsplit(at.cluster_value or "").path.strip("/")
    db = int(path) if path.isdigit() else 0
    return {"REDIS_URL": at.redis_url if db == 0 else redis_database(at.redis_url, db)}


def _stripe_key(at: _Local) -> dict[str, str]:
    env = {"STRIPE_KEY": at.inputs.stripe_key or DEV_STRIPE_KEY}
    if at.localstripe_url is not None:
        env["STRIPE_API_BASE"] = at.localstripe_url
    return env


def _stripe_js_url(at: _Local) -> dict[str, str]:
    local = f"{at.localstripe_url}/js.stripe.com/v3/" if at.localstripe_url else None
    return {"STRIPE_JS_URL": at.inputs.get("STRIPE_JS_URL") or local or REAL_STRIPE_JS_URL}


# Each variable a Deployment sets, as make dev sets it: per name, not per service, so a
# variable added to a manifest reaches make dev or stops the plan naming it. An empty
# result leaves the setting's default.
_LOCAL_VALUES: dict[str, Callable[[_Local], dict[str, str]]] = {
    "JWT_KEY": lambda at: {"JWT_KEY": at.inputs.jwt_key},
    # The gateway serves plain http on loopback.
    "COOKIE_SECURE": lambda at: {"COOKIE_SECURE": at.inputs.get("COOKIE_SECURE") or "false"},
    "MONGO_URI": lambda at: {
        "MONGO_URI": at.inputs.get(f"{at.service.upper()}_MONGO_URI") or MEMORY_URI
    },
    "NATS_URL": lambda at: {"NATS_URL": at.nats_url},
    "REDIS_URL": _redis_url,
    # Every request reaches auth through the gateway, on loopback: its X-Forwarded-For
    # names the client.
    "TRUSTED_PROXIES": lambda at: {"TRUSTED_PROXIES": GATEWAY_PROXIES},
    "ARGON2_MAX_CONCURRENT": lambda at: at.given("ARGON2_MAX_CONCURRENT"),
    "ARGON2_MAX_QUEUED": lambda at: at.given("ARGON2_MAX_QUEUED"),
    "EXPIRATION_WINDOW_SECONDS": lambda at: at.given("EXPIRATION_WINDOW_SECONDS"),
    # With localstripe, payments calls it (STRIPE_API_BASE is make dev's alone).
    "STRIPE_KEY": _stripe_key,
    "STRIPE_WEBHOOK_SECRET": lambda at: (
        {"STRIPE_WEBHOOK_SECRET": at.inputs.webhook_secret}
        if at.localstripe_url is not None or at.inputs.get("STRIPE_WEBHOOK_SECRET")
        else {}
    ),
    "API_BASE_URL": lambda at: {"API_BASE_URL": at.gateway_url},
    "STRIPE_PUBLISHABLE_KEY": lambda at: {
        "STRIPE_PUBLISHABLE_KEY": at.inputs.get("STRIPE_PUBLISHABLE_KEY")
        or DEV_STRIPE_PUBLISHABLE_KEY
    },
    "STRIPE_JS_URL": _stripe_js_url,
    # No metrics port locally: the client and the worker would both take 9100.
    "METRICS_PORT": lambda at: {},
}


def _service_env(
    root: Path,
    name: str,
    inputs: _Inputs,
    nats_url: str,
    redis_url: str,
    localstripe_url: str | None,
    gateway_url: str,
) -> dict[str, str]:
    """The variables `name`'s Deployment sets, each with its local value."""
    try:
        variables: tuple[EnvVar, ...] | None = deployment_env(root).get(name)
    except ManifestError as exc:
        raise DevstackError(str(exc)) from None
    if variables is None:
        raise DevstackError(
            f"{root / K8S_DIR} has no Deployment {name}-depl: make dev reads "
            f"{name}'s variables from it"
        )
    env: dict[str, str] = {}
    for var in variables:
        local = _LOCAL_VALUES.get(var.name)
        if local is None:
            raise DevstackError(
                f"{name}-depl sets {var.name}, which has no local value: add it to "
                "_LOCAL_VALUES in ticketing_devstack/plan.py"
            )
        at = _Local(name, inputs, nats_url, redis_url, localstripe_url, gateway_url, var.value)
        env |= local(at)
    return env
