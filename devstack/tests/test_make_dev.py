"""`make dev`, the real command: up behind the gateway, usable, and gone after Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ticketing_devstack.routes import repo_root
from ticketing_devstack.stack import isolated_environ, leftovers

READY = re.compile(r"ready at (http://127\.0\.0\.1:\d+) ")
STARTED = re.compile(r"(\S+) started \(pid=(\d+)\)")
RUN_FOLDER = re.compile(r"run folder (\S+) ")
PORT_FLAG = re.compile(r"(?:--port|-p) (\d+)")


@dataclass
class MakeDev:
    proc: subprocess.Popen[str]
    gateway_port: int
    localstripe_port: int
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if match := pattern.search(line):
                return match
        pytest.fail(f"no {pattern.pattern!r} from make dev:\n{self.tail()}")

    def find_all(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for line in list(self.log) for m in [pattern.search(line)] if m]

    def tail(self) -> str:
        return "".join(self.log[-80:])


@pytest.fixture
def make_dev() -> Iterator[MakeDev]:
    env = isolated_environ()
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "dev"],
        cwd=repo_root(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = MakeDev(proc, int(env["GATEWAY_PORT"]), int(env["LOCALSTRIPE_PORT"]))

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.log.append(line)
            run.lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(240)
def test_make_dev_serves_signup_through_the_gateway_and_ctrl_c_leaves_nothing(
    make_dev: MakeDev,
) -> None:
    gateway_url = make_dev.wait_for(READY, timeout=150).group(1)
    assert gateway_url == f"http://127.0.0.1:{make_dev.gateway_port}"
    run_dir = Path(make_dev.find_all(RUN_FOLDER)[0].group(1))
    procfile = (run_dir / "Procfile").read_text()
    pids = {m.group(1): int(m.group(2)) for m in make_dev.find_all(STARTED)}
    assert {"nats", "redis", "localstripe", "auth", "gateway"} <= set(pids)
    assert set(pids) == {line.split(":")[0] for line in procfile.splitlines()[1:]}

    with httpx.Client(base_url=gateway_url, trust_env=False) as http:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        signup = http.post("/api/users/signup", json={"email": email, "password": "pass1234"})
        assert signup.status_code == 201, signup.text
        current = http.get("/api/users/currentuser")
        assert current.status_code == 200
        assert current.json()["currentUser"]["email"] == email

    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(make_dev.proc.pid, signal.SIGINT)
    make_dev.proc.wait(timeout=30)

    ports = [make_dev.gateway_port, make_dev.localstripe_port]
    ports += [int(port) for port in PORT_FLAG.findall(procfile)]
    assert leftovers(pids.values(), run_dir, ports) == [], make_dev.tail()
    assert not run_dir.exists()
