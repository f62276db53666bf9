"""The whole stack from Python, started exactly as `make dev` starts it (for tests).

    with Stack(expiration_window_seconds=5, replicas=3) as stack:
        httpx.post(f"{stack.gateway_url}/api/users/signup", json=...)

`Stack` plans the processes here (so `stack.processes` shows every command line and
environment before anything runs), then runs `python -m ticketing_devstack --plan ...` in
its own session, the same runner and Procfile `make dev` uses, with its output in a log file
(kept after a failure inside `with Stack()`, its path printed to stderr).
Unlike `make dev`, a Stack uses free ports and its own NATS, Redis and localstripe unless
the `env` given to it says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from ticketing_devstack.plan import Plan, ProcessSpec, build_plan
from ticketing_devstack.runner import kill_run, run_processes
from ticketing_devstack.servers import free_port

# Variables that would point a test stack at shared servers or real Stripe; a Stack only
# takes them from its `env` argument.
NOT_INHERITED = ("NATS_URL", "REDIS_URL", "STRIPE_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_JS_URL")


def isolated_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a stack of its own: this process's without `NOT_INHERITED`,
    free `GATEWAY_PORT` and `LOCALSTRIPE_PORT`, then `env` on top."""
    inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    ports = {"GATEWAY_PORT": str(free_port()), "LOCALSTRIPE_PORT": str(free_port())}
    return {**inherited, **ports, **(env or {})}


def leftovers(
    pids: Iterable[int], run_dir: Path, ports: Iterable[int], timeout: float = 10.0
) -> list[str]:
    """What is still alive of a stopped run (process groups, marked processes, open ports)
    after waiting up to `timeout` seconds for it to go; empty when all is gone."""
    pids, ports = list(pids), list(ports)
    deadline = time.monotonic() + timeout
    while (found := _alive(pids, run_dir, ports)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _alive(pids: list[int], run_dir: Path, ports: list[int]) -> list[str]:
    found = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, 0)
            found.append(f"process group {pid}")
    found.extend(f"process {pid} of the run" for pid in run_processes(run_dir))
    for port in ports:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            found.append(f"port {port}")
    return found


class StackError(RuntimeError):
    """The stack did not come up (the message ends with the tail of its log)."""


class Stack:
    """Every built service, NATS, Redis, localstripe and the gateway, as `make dev` runs them."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        expiration_window_seconds: float | None = None,
        replicas: int | None = None,
        gateway_port: int | None = None,
        localstripe_port: int | None = None,
        root: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        ports = {"GATEWAY_PORT": gateway_port, "LOCALSTRIPE_PORT": localstripe_port}
        chosen = {name: str(port) for name, port in ports.items() if port}
        self.env = isolated_environ({**chosen, **(env or {})})
        if expiration_window_seconds is not None:
            self.env["EXPIRATION_WINDOW_SECONDS"] = f"{expiration_window_seconds:g}"
        if replicas is not None:
            self.env["REPLICAS"] = str(replicas)
        self.root = root
        self._own_log = log_path is None
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="devstack-", suffix=".log")[1])
        self.plan: Plan | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: dict[str, int] = {}
        self._state_dir = Path(tempfile.mkdtemp(prefix="devstack-state-"))
        self._state_file = self._state_dir / "state.json"

    # -- what runs ---------------------------------------------------------------------

    def build(self) -> Plan:
        """Plan the stack (ports, commands, environments) without starting anything."""
        if self.plan is None:
            self.plan = build_plan(self.env, root=self.root)
        return self.plan

    @property
    def processes(self) -> dict[str, ProcessSpec]:
        """Every process by name, with its command line (`argv`) and environment (`env`)."""
        return {spec.name: spec for spec in self.build().processes}

    @property
    def gateway_url(self) -> str:
        return self.build().gateway_url

    @property
    def localstripe_url(self) -> str | None:
        return self.build().localstripe_url

    @property
    def nats_url(self) -> str:
        return self.build().nats_url

    @property
    def redis_url(self) -> str:
        return self.build().redis_url

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner (returns at once; see `wait_ready`)."""
        if self.proc is not None:
            raise StackError("stack already started")
        plan = self.build()
        plan_file = self._state_dir / "plan.json"
        plan_file.write_text(plan.model_dump_json())
        argv = [sys.executable, "-m", "ticketing_devstack", "--plan", str(plan_file)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--state-file", str(self._state_file)],
                env=self.env,
                cwd=plan.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until every process passes its readiness probe, as `make dev` reports it."""
        if self.proc is None:
            raise StackError("stack not started")
        deadline = time.monotonic() + timeout
        while not self._state_file.exists():
            if self.proc.poll() is not None:
                raise StackError(f"stack exited with {self.proc.returncode}\n{self._tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"stack not ready after {timeout:g}s\n{self._tail()}")
            time.sleep(0.1)
        self.pids = json.loads(self._state_file.read_text())["pids"]

    def stop(self, timeout: float = 20.0, *, keep_log: bool = False) -> int | None:
        """Stop every process (SIGTERM to the runner, as Ctrl-C does to `make dev`).

        A log file the Stack chose itself is removed unless `keep_log`.
        """
        code = None
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            # Whatever survived the runner: its own group, each process's group, and any
            # process carrying the run's marker.
            kill_run(self.build().run_dir, (self.proc.pid, *self.pids.values()))
            if code is None:
                code = self.proc.wait()
            self.proc = None
        if self.plan is not None:
            shutil.rmtree(self.plan.run_dir, ignore_errors=True)
        shutil.rmtree(self._state_dir, ignore_errors=True)
        if self._own_log and not keep_log:
            self.log_path.unlink(missing_ok=True)
        return code

    def leftovers(self, timeout: float = 10.0) -> list[str]:
        """After `stop`: whatever of this stack is still alive after up to `timeout`
        seconds (empty when all is gone)."""
        plan = self.build()
        ports = [spec.port for spec in plan.processes if spec.port is not None]
        return leftovers(self.pids.values(), plan.run_dir, ports, timeout)

    def __enter__(self) -> Stack:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(keep_log=True)
            print(f"devstack log: {self.log_path}", file=sys.stderr)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After a failure the log stays, for whoever reads the test's output.
        self.stop(keep_log=exc is not None)
        if exc is not None:
            print(f"devstack log: {self.log_path}", file=sys.stderr)

    def _tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])
