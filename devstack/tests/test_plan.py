"""What `make dev` runs, planned from the environment and the services that are built."""

from __future__ import annotations

import importlib
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from honcho.environ import parse_procfile

from ticketing_common.config import DEV_JWT_KEY
from ticketing_devstack.manifests import K8S_DIR
from ticketing_devstack.nginx import TEMPLATE
from ticketing_devstack.plan import DevstackError, Plan, build_plan, stop_process
from ticketing_devstack.probes import wait_until_ready
from ticketing_devstack.routes import ROUTES_FILE, repo_root
from ticketing_devstack.servers import free_port, wait_for_port

ALL = ("auth", "tickets", "orders", "payments", "client")

MakeRoot = Callable[..., Path]


@pytest.fixture
def make_root(tmp_path: Path) -> MakeRoot:
    """A checkout with the real route table and manifests, and only the given services built."""

    def make(*services: str, worker: bool = False) -> Path:
        root = tmp_path / "repo"
        (root / ROUTES_FILE).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root() / ROUTES_FILE, root / ROUTES_FILE)
        shutil.copy(repo_root() / TEMPLATE, root / TEMPLATE)
        shutil.copytree(repo_root() / K8S_DIR, root / K8S_DIR)
        for name in services:
            add_service(root, name)
        if worker:
            module = root / "expiration" / "src" / "expiration" / "worker.py"
            module.parent.mkdir(parents=True, exist_ok=True)
            module.write_text("class WorkerSettings:\n    pass\n")
        return root

    return make


def add_service(root: Path, name: str) -> None:
    module = root / name / "src" / name / "app.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text("def create_app():\n    ...\n")


def ports_env(**extra: str) -> dict[str, str]:
    return {"GATEWAY_PORT": str(free_port()), "LOCALSTRIPE_PORT": str(free_port()), **extra}


def names(plan: Plan) -> list[str]:
    return [spec.name for spec in plan.processes]


class TestDefaults:
    def test_whole_stack_in_start_order(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root(*ALL, worker=True))

        assert names(plan) == [
            "nats",
            "redis",
            "localstripe",
            *ALL,
            "expiration",
            "gateway",
        ]
        assert plan.missing == []
        ports = [spec.port for spec in plan.processes if spec.port is not None]
        assert len(ports) == len(set(ports))

    def test_services_run_under_uvicorn_with_one_worker_on_their_port(
        self, make_root: MakeRoot
    ) -> None:
        plan = build_plan(ports_env(), root=make_root(*ALL))

        for name in ALL:
            spec = plan.process(name)
            assert Path(spec.argv[0]).name == "uvicorn"
            assert spec.argv[1:] == [
                f"{name}.app:create_app",
                "--factory",
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--timeout-keep-alive", "75"),
                "--host",
                "127.0.0.1",
                "--port",
                str(spec.port),
            ]
            assert spec.probe is not None and spec.probe.kind == "http"
            assert spec.probe.url == f"http://127.0.0.1:{spec.port}/readyz"

    def test_dev_defaults_with_a_warning_for_the_jwt_key(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root(*ALL))

        auth = plan.process("auth").env
        assert auth["JWT_KEY"] == DEV_JWT_KEY
        assert auth["COOKIE_SECURE"] == "false"
        assert auth["MONGO_URI"] == "memory://"
        assert "NATS_URL" not in auth
        assert any("JWT_KEY" in warning for warning in plan.warnings)
        for name in ("tickets", "orders", "payments"):
            env = plan.process(name).env
            assert env["NATS_URL"] == plan.nats_url
            assert env["MONGO_URI"] == "memory://"
            assert env["JWT_KEY"] == DEV_JWT_KEY

    def test_payments_use_localstripe_with_a_test_key(self, make_root: MakeRoot) -> None:
        environ = ports_env()
        plan = build_plan(environ, root=make_root(*ALL))

        localstripe = plan.process("localstripe")
        assert plan.localstripe_url == f"http://127.0.0.1:{environ['LOCALSTRIPE_PORT']}"
        assert localstripe.port == int(environ["LOCALSTRIPE_PORT"])
        port_at = localstripe.argv.index("--port")
        assert localstripe.argv[port_at : port_at + 2] == ["--port", environ["LOCALSTRIPE_PORT"]]
        payments = plan.process("payments").env
        assert payments["STRIPE_KEY"] == "sk_test_dev"
        assert payments["STRIPE_API_BASE"] == plan.localstripe_url
        # localstripe signs its webhooks with the secret payments verifies them with, and
        # sends them to payments through the gateway.
        assert localstripe.argv[-4:] == [
            "--webhook",
            f"{plan.gateway_url}/api/payments/webhooks/stripe",
            "--webhook-secret",
            payments["STRIPE_WEBHOOK_SECRET"],
        ]

    def test_client_calls_the_gateway_and_loads_stripe_js_from_localstripe(
        self, make_root: MakeRoot
    ) -> None:
        environ = ports_env()
        plan = build_plan(environ, root=make_root(*ALL))

        client = plan.process("client").env
        assert client["API_BASE_URL"] == f"http://127.0.0.1:{environ['GATEWAY_PORT']}"
        assert client["API_BASE_URL"] == plan.gateway_url
        assert client["STRIPE_PUBLISHABLE_KEY"] == "pk_test_dev"
        assert client["STRIPE_JS_URL"] == f"{plan.localstripe_url}/js.stripe.com/v3/"

    def test_worker_gets_the_broker_and_redis_and_arq_checks_it(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root(worker=True))

        worker = plan.process("expiration")
        assert Path(worker.argv[0]).name == "arq"
        assert worker.argv[1:] == ["expiration.worker.WorkerSettings"]
        assert worker.env["NATS_URL"] == plan.nats_url
        assert worker.env["REDIS_URL"] == plan.redis_url
        assert worker.probe is not None and worker.probe.kind == "command"
        assert worker.probe.argv[1:] == ["--check", "expiration.worker.WorkerSettings"]

    def test_own_nats_keeps_its_store_in_the_run_folder(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root("auth"))

        nats = plan.process("nats")
        assert nats.argv[nats.argv.index("-sd") + 1] == str(plan.run_dir / "nats")
        assert "-js" in nats.argv
        assert plan.nats_url == f"nats://127.0.0.1:{nats.port}"


class TestEnvironment:
    def test_given_servers_replace_our_own(self, make_root: MakeRoot) -> None:
        environ = ports_env(NATS_URL="nats://10.0.0.1:4222", REDIS_URL="redis://10.0.0.2:6379/0")
        plan = build_plan(environ, root=make_root(*ALL, worker=True))

        assert "nats" not in names(plan) and "redis" not in names(plan)
        assert plan.process("orders").env["NATS_URL"] == "nats://10.0.0.1:4222"
        assert plan.process("expiration").env["REDIS_URL"] == "redis://10.0.0.2:6379/0"

    def test_stripe_key_means_real_stripe(self, make_root: MakeRoot) -> None:
        environ = ports_env(STRIPE_KEY="sk_test_real", STRIPE_PUBLISHABLE_KEY="pk_test_real")
        plan = build_plan(environ, root=make_root(*ALL))

        assert "localstripe" not in names(plan)
        assert plan.localstripe_url is None
        payments = plan.process("payments").env
        assert payments["STRIPE_KEY"] == "sk_test_real"
        assert "STRIPE_API_BASE" not in payments
        client = plan.process("client").env
        assert client["STRIPE_JS_URL"] == "https://js.stripe.com/v3/"
        assert client["STRIPE_PUBLISHABLE_KEY"] == "pk_test_real"

    def test_given_settings_pass_through(self, make_root: MakeRoot) -> None:
        environ = ports_env(
            JWT_KEY="k" * 40,
            COOKIE_SECURE="true",
            EXPIRATION_WINDOW_SECONDS="5",
            ORDERS_MONGO_URI="mongodb://db:27017/orders",
        )
        plan = build_plan(environ, root=make_root(*ALL))

        assert not any("JWT_KEY" in warning for warning in plan.warnings)
        assert plan.process("auth").env["COOKIE_SECURE"] == "true"
        orders = plan.process("orders").env
        assert orders["JWT_KEY"] == "k" * 40
        assert orders["EXPIRATION_WINDOW_SECONDS"] == "5"
        assert orders["MONGO_URI"] == "mongodb://db:27017/orders"
        tickets = plan.process("tickets").env
        assert tickets["MONGO_URI"] == "memory://"
        assert "EXPIRATION_WINDOW_SECONDS" not in tickets

    def test_busy_gateway_port_is_refused_by_name(self, make_root: MakeRoot) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with pytest.raises(DevstackError, match=f"port {port} \\(GATEWAY_PORT\\) is in use"):
                build_plan(ports_env(GATEWAY_PORT=str(port)), root=make_root("auth"))

    def test_port_that_is_not_a_number_is_refused(self, make_root: MakeRoot) -> None:
        with pytest.raises(DevstackError, match="LOCALSTRIPE_PORT='x'"):
            build_plan(ports_env(LOCALSTRIPE_PORT="x"), root=make_root("auth"))


class TestFromTheManifests:
    """Each process gets the variables its Deployment under infra/k8s sets, valued locally."""

    @pytest.mark.parametrize("service", [*ALL, "expiration"])
    def test_each_process_env_makes_valid_settings_without_cluster_credentials(
        self, make_root: MakeRoot, service: str
    ) -> None:
        plan = build_plan(ports_env(), root=make_root(*ALL, worker=True))

        env = plan.process(service).env
        importlib.import_module(f"{service}.config").Settings.model_validate(env)
        # Secrets that exist only to be expanded into the cluster's URLs stay out.
        assert not {name for name in env if name.endswith(("_PASSWORD", "_USERNAME"))}
        assert "METRICS_PORT" not in env  # the client and the worker would both take 9100

    def test_a_variable_a_deployment_gains_reaches_its_process_with_the_local_value(
        self, make_root: MakeRoot
    ) -> None:
        root = make_root("tickets")
        add_variable(root, "tickets", "TRUSTED_PROXIES", "10.0.0.0/8")

        env = build_plan(ports_env(), root=root).process("tickets").env

        assert env["TRUSTED_PROXIES"] == "127.0.0.1/32,::1/128"

    def test_a_variable_without_a_local_value_stops_the_plan_naming_it(
        self, make_root: MakeRoot
    ) -> None:
        root = make_root("tickets")
        add_variable(root, "tickets", "TICKETS_NEW_KNOB", "1")

        with pytest.raises(DevstackError, match="tickets-depl sets TICKETS_NEW_KNOB"):
            build_plan(ports_env(), root=root)

    def test_a_built_service_without_a_deployment_stops_the_plan(self, make_root: MakeRoot) -> None:
        root = make_root("tickets")
        (root / K8S_DIR / "tickets-depl.yaml").unlink()

        with pytest.raises(DevstackError, match="no Deployment tickets-depl"):
            build_plan(ports_env(), root=root)


def add_variable(root: Path, service: str, name: str, value: str) -> None:
    manifest = root / K8S_DIR / f"{service}-depl.yaml"
    text = manifest.read_text()
    assert text.count("          env:\n") == 1
    added = f"          env:\n            - name: {name}\n              value: {value!r}\n"
    manifest.write_text(text.replace("          env:\n", added))


class TestBuiltServices:
    def test_only_built_services_run_and_are_routed(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root("auth"))

        assert names(plan) == ["nats", "redis", "localstripe", "auth", "gateway"]
        assert plan.missing == ["tickets", "orders", "payments", "client", "expiration"]
        conf = (plan.run_dir / "nginx.conf").read_text()
        assert '"^/api/users/?(.*)"' in conf
        assert "/api/payments" not in conf and '"^/?(.*)"' not in conf

    def test_a_service_that_appears_joins_without_edits(self, make_root: MakeRoot) -> None:
        root = make_root("auth")
        assert "payments" not in names(build_plan(ports_env(), root=root))

        add_service(root, "payments")
        plan = build_plan(ports_env(), root=root)

        assert "payments" in names(plan)
        conf = (plan.run_dir / "nginx.conf").read_text()
        assert f"server 127.0.0.1:{plan.process('payments').port};" in conf
        assert '"^/api/payments/?(.*)"' in conf

    def test_app_module_without_create_app_is_not_built(self, make_root: MakeRoot) -> None:
        root = make_root("auth")
        (root / "tickets" / "src" / "tickets").mkdir(parents=True)
        (root / "tickets" / "src" / "tickets" / "app.py").write_text("# nothing yet\n")

        assert "tickets" not in names(build_plan(ports_env(), root=root))

    def test_failed_plan_leaves_no_run_folder(self, make_root: MakeRoot) -> None:
        root = make_root("auth")
        (root / ROUTES_FILE).write_text('[[route]]\npath = "/a{"\nservice = "auth"\n')

        with pytest.raises(ValueError):
            build_plan(ports_env(), root=root)
        assert list((root / ".run").iterdir()) == []


class TestProcfile:
    def test_every_process_is_a_procfile_entry_honcho_reads(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root(*ALL, worker=True))

        entries = parse_procfile(plan.procfile({})).processes

        assert list(entries) == names(plan)
        assert entries["auth"].startswith("exec env ")
        assert "MONGO_URI=memory://" in entries["auth"]
        assert entries["gateway"] == f"exec {plan.process('gateway').command}"

    def test_inherited_values_are_not_repeated(self, make_root: MakeRoot) -> None:
        plan = build_plan(ports_env(), root=make_root("auth"))

        line = plan.procfile({"JWT_KEY": DEV_JWT_KEY}).splitlines()
        auth = next(entry for entry in line if entry.startswith("auth:"))
        assert "JWT_KEY" not in auth
        assert "COOKIE_SECURE=false" in auth

    def test_a_single_process_starts_alone_with_the_same_command(self, make_root: MakeRoot) -> None:
        redis = build_plan(ports_env(), root=make_root()).process("redis")
        assert redis.port is not None

        proc = redis.popen()
        try:
            wait_until_ready([redis], timeout=15)
        finally:
            stop_process(proc)
        with pytest.raises(TimeoutError):
            wait_for_port(redis.port, timeout=0.3)
