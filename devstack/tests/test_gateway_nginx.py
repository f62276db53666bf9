"""The generated nginx config, run by the real nginx against stand-in services."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ticketing_devstack.nginx import nginx_command, write_nginx_conf
from ticketing_devstack.plan import ProcessSpec, stop_process
from ticketing_devstack.routes import load_routes
from ticketing_devstack.servers import find_binary, free_port, wait_for_port


class Upstream:
    """A stand-in service: answers JSON naming itself and records what it received."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                upstream.seen.append({"path": self.path, "headers": dict(self.headers)})
                status = 502 if self.path.endswith("/fail") else 200
                body = json.dumps({"service": upstream.name}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


StartGateway = Callable[[dict[str, int]], httpx.Client]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Start nginx with the config generated for `upstreams` (service -> port)."""
    procs: list[Any] = []
    clients: list[httpx.Client] = []

    def start(upstreams: dict[str, int]) -> httpx.Client:
        run_dir = tmp_path / f"run{len(procs)}"
        port = free_port()
        conf = write_nginx_conf(
            run_dir, routes=load_routes(), upstreams=upstreams, listen_port=port
        )
        argv = nginx_command(find_binary("nginx"), run_dir, conf)
        procs.append(ProcessSpec(name="gateway", kind="gateway", argv=argv).popen())
        wait_for_port(port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for proc in procs:
        stop_process(proc)


@pytest.fixture
def auth() -> Iterator[Upstream]:
    upstream = Upstream("auth")
    yield upstream
    upstream.close()


@pytest.fixture
def client_app() -> Iterator[Upstream]:
    upstream = Upstream("client")
    yield upstream
    upstream.close()


class TestGatewayRouting:
    def test_api_path_reaches_its_service_unchanged_with_forwarded_headers(
        self, start_gateway: StartGateway, auth: Upstream, client_app: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port, "client": client_app.port})

        response = gateway.get("/api/users/currentuser?probe=1")

        assert response.json() == {"service": "auth"}
        (request,) = auth.seen
        assert request["path"] == "/api/users/currentuser?probe=1"
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["host"] == "127.0.0.1"
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "http"

    def test_everything_else_goes_to_the_client(
        self, start_gateway: StartGateway, auth: Upstream, client_app: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port, "client": client_app.port})

        assert gateway.get("/tickets/new").json() == {"service": "client"}
        assert gateway.get("/").json() == {"service": "client"}
        assert [r["path"] for r in client_app.seen] == ["/tickets/new", "/"]

    def test_paths_match_case_insensitively_as_ingress_nginx(
        self, start_gateway: StartGateway, auth: Upstream, client_app: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port, "client": client_app.port})

        assert gateway.get("/API/Users/currentuser").json() == {"service": "auth"}

    def test_route_of_an_unbuilt_service_falls_through_to_the_client(
        self, start_gateway: StartGateway, auth: Upstream, client_app: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port, "client": client_app.port})

        assert gateway.get("/api/payments").json() == {"service": "client"}

    def test_without_the_client_an_unrouted_path_is_a_json_404(
        self, start_gateway: StartGateway, auth: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port})

        response = gateway.get("/tickets/new")

        assert response.status_code == 404
        assert response.json() == {"errors": [{"message": "Not Found"}]}

    def test_service_that_is_down_is_a_json_503(
        self, start_gateway: StartGateway, auth: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port, "tickets": free_port()})

        response = gateway.get("/api/tickets")

        assert response.status_code == 503
        assert response.json() == {"errors": [{"message": "Service unavailable"}]}

    def test_a_service_own_502_passes_through_untouched(
        self, start_gateway: StartGateway, auth: Upstream
    ) -> None:
        gateway = start_gateway({"auth": auth.port})

        response = gateway.get("/api/users/fail")

        assert response.status_code == 502
        assert response.json() == {"service": "auth"}
