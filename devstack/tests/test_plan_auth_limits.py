"""`make dev` gives auth what its sign-in limits need: the stack's Redis (a database of its
own) and the gateway as its trusted proxy."""

from __future__ import annotations

import shutil
from ipaddress import ip_address
from pathlib import Path

from auth.config import Settings
from ticketing_devstack.manifests import K8S_DIR
from ticketing_devstack.nginx import TEMPLATE
from ticketing_devstack.plan import build_plan
from ticketing_devstack.routes import ROUTES_FILE, repo_root
from ticketing_devstack.servers import free_port


def checkout(tmp_path: Path) -> Path:
    """A checkout with the real route table and manifests, auth and the worker built."""
    root = tmp_path / "repo"
    (root / ROUTES_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo_root() / ROUTES_FILE, root / ROUTES_FILE)
    shutil.copy(repo_root() / TEMPLATE, root / TEMPLATE)
    shutil.copytree(repo_root() / K8S_DIR, root / K8S_DIR)
    for name, module in (("auth", "app"), ("expiration", "worker")):
        path = root / name / "src" / name / f"{module}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("def create_app():\n    ...\n\nclass WorkerSettings:\n    pass\n")
    return root


def ports_env(**extra: str) -> dict[str, str]:
    return {"GATEWAY_PORT": str(free_port()), "LOCALSTRIPE_PORT": str(free_port()), **extra}


def test_auth_counts_in_its_own_database_of_the_stacks_redis(tmp_path: Path) -> None:
    plan = build_plan(ports_env(), root=checkout(tmp_path))

    auth = plan.process("auth").env
    assert plan.redis_url.endswith("/0")
    assert auth["REDIS_URL"] == plan.redis_url.removesuffix("/0") + "/1"
    assert plan.process("expiration").env["REDIS_URL"] == plan.redis_url


def test_a_given_redis_is_shared_with_auth_in_database_1(tmp_path: Path) -> None:
    environ = ports_env(REDIS_URL="redis://cache.example:6390/4")

    plan = build_plan(environ, root=checkout(tmp_path))

    assert plan.process("auth").env["REDIS_URL"] == "redis://cache.example:6390/1"
    assert plan.process("expiration").env["REDIS_URL"] == "redis://cache.example:6390/4"


def test_auth_trusts_the_gateways_forwarded_for_and_its_env_is_valid(tmp_path: Path) -> None:
    plan = build_plan(ports_env(), root=checkout(tmp_path))

    settings = Settings.model_validate(plan.process("auth").env)
    # The gateway reaches the services from loopback.
    assert any(ip_address("127.0.0.1") in net for net in settings.TRUSTED_PROXIES)
    assert any(ip_address("::1") in net for net in settings.TRUSTED_PROXIES)
