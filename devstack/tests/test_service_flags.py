"""How make dev runs each HTTP service's uvicorn: uvloop, httptools, no access log."""

from __future__ import annotations

from pathlib import Path

import httpx

from ticketing_devstack.plan import build_plan, stop_process
from ticketing_devstack.routes import repo_root
from ticketing_devstack.servers import free_port, wait_for_port


def test_a_service_starts_with_uvloop_and_httptools_and_logs_no_request_lines(
    tmp_path: Path,
) -> None:
    """The client, started alone with make dev's command, comes up (uvicorn refuses to
    start when the named loop or parser is missing) and answers requests without writing
    a line for each."""
    environ = {"GATEWAY_PORT": str(free_port()), "LOCALSTRIPE_PORT": str(free_port())}
    plan = build_plan(environ, root=repo_root(), run_dir=tmp_path / "run")
    client = plan.process("client")
    assert client.url is not None
    for flag in ("--loop uvloop", "--http httptools", "--no-access-log"):
        assert flag in client.command
    log_path = tmp_path / "client.log"
    with log_path.open("wb") as log:
        proc = client.popen(stdout=log)
        try:
            # Its /readyz needs the gateway, which is not running: the port is enough.
            assert client.port is not None
            wait_for_port(client.port, timeout=60)
            for _ in range(3):
                assert httpx.get(f"{client.url}/healthz", trust_env=False).status_code == 200
        finally:
            stop_process(proc)
    output = log_path.read_text(errors="replace")
    assert "Application startup complete" in output
    assert "GET /healthz" not in output
