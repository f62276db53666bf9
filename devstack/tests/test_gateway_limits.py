"""The gateway refuses bodies over the services' MAX_BODY_BYTES itself (413, the API's error
shape) and tells the services who the client is (X-Forwarded-For, never the client's own)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ticketing_common.config import DEFAULT_MAX_BODY_BYTES
from ticketing_devstack.nginx import nginx_command, write_nginx_conf
from ticketing_devstack.plan import ProcessSpec, stop_process
from ticketing_devstack.routes import load_routes
from ticketing_devstack.servers import find_binary, free_port, wait_for_port

TOO_LARGE = {"errors": [{"message": "Request body is too large"}]}


class Auth:
    """A stand-in auth: records the size and headers of every POST it gets, answers 200."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                size = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                upstream.seen.append({"size": size, "headers": dict(self.headers)})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auth() -> Iterator[Auth]:
    upstream = Auth()
    yield upstream
    upstream.close()


@pytest.fixture
def gateway(tmp_path: Path, auth: Auth) -> Iterator[httpx.Client]:
    port = free_port()
    conf = write_nginx_conf(
        tmp_path, routes=load_routes(), upstreams={"auth": auth.port}, listen_port=port
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


def post(gateway: httpx.Client, size: int, **headers: str) -> httpx.Response:
    body = b"x" * size
    return gateway.post(
        "/api/users/signin",
        content=body,
        headers={"content-type": "application/json", **headers},
    )


def test_a_body_over_the_limit_is_413_in_the_api_shape_and_never_reaches_the_service(
    gateway: httpx.Client, auth: Auth
) -> None:
    response = post(gateway, DEFAULT_MAX_BODY_BYTES + 1)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert auth.seen == []


def test_a_streamed_body_over_the_limit_is_413_too(gateway: httpx.Client, auth: Auth) -> None:
    chunk = b"x" * 65536

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
        for _ in range(DEFAULT_MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk

    response = gateway.post(
        "/api/users/signin", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert auth.seen == []


def test_a_body_at_the_limit_passes_on_whole(gateway: httpx.Client, auth: Auth) -> None:
    response = post(gateway, DEFAULT_MAX_BODY_BYTES)

    assert response.status_code == 200
    assert [seen["size"] for seen in auth.seen] == [DEFAULT_MAX_BODY_BYTES]


def test_the_clients_own_forwarded_for_is_replaced_by_its_address(
    gateway: httpx.Client, auth: Auth
) -> None:
    post(gateway, 2, **{"x-forwarded-for": "198.51.100.1"})

    (seen,) = auth.seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-forwarded-for"] == "127.0.0.1"
