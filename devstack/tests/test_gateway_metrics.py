"""The gateway never passes `/metrics` on (docs/OPERATIONS.md): the real nginx with the
generated config, in front of stand-in services that would answer anything."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ticketing_devstack.nginx import nginx_command, write_nginx_conf
from ticketing_devstack.plan import ProcessSpec, stop_process
from ticketing_devstack.routes import load_routes
from ticketing_devstack.servers import find_binary, free_port, wait_for_port

SERVICES = ("auth", "tickets", "orders", "payments", "client")


class AnswersAnything:
    """A stand-in service answering 200 with its name and the path to every GET."""

    def __init__(self, name: str) -> None:
        answering = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({"service": name, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=answering.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[httpx.Client]:
    upstreams = {name: AnswersAnything(name) for name in SERVICES}
    port = free_port()
    conf = write_nginx_conf(
        tmp_path,
        routes=load_routes(),
        upstreams={name: upstream.port for name, upstream in upstreams.items()},
        listen_port=port,
    )
    proc = ProcessSpec(
        name="gateway", kind="gateway", argv=nginx_command(find_binary("nginx"), tmp_path, conf)
    ).popen()
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            yield client
    finally:
        stop_process(proc)
        for upstream in upstreams.values():
            upstream.server.shutdown()
            upstream.server.server_close()


class TestMetricsNotRouted:
    @pytest.mark.parametrize(
        "path",
        [
            "/metrics",
            "/METRICS",
            "/metrics/",
            "//metrics",
            "/metrics?x=1",
            "/api/tickets/../../metrics",
        ],
    )
    def test_metrics_is_not_found_at_the_gateway(self, gateway: httpx.Client, path: str) -> None:
        # Sent as is (no client-side clean-up of slashes and dot segments).
        response = gateway.get(gateway.base_url.copy_with(raw_path=path.encode()))
        assert response.status_code == 404
        assert response.json() == {"errors": [{"message": "Not Found"}]}

    def test_other_paths_still_reach_their_service(self, gateway: httpx.Client) -> None:
        # (A service answers its own 404 for this one: its `/metrics` is at its root.)
        assert gateway.get("/api/tickets/metrics").json()["service"] == "tickets"
        assert gateway.get("/metricsboard").json()["service"] == "client"
