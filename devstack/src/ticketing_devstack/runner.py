"""Run a planned stack in the foreground: a Procfile under honcho, then a clean stop.

honcho runs each process in its own session and, when one exits or on SIGINT/SIGTERM,
sends SIGTERM to every process group (SIGKILL after 5 s). After honcho returns, the
runner kills whatever is left in those groups and removes the run folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from honcho.environ import parse_procfile
from honcho.manager import SYSTEM_PRINTER_NAME, Manager
from honcho.printer import Message, Printer

from ticketing_devstack.plan import Plan, ProcessSpec
from ticketing_devstack.probes import is_ready

NAME = "devstack"
READY_MESSAGE = "ready at"
# Every process of a run carries this variable (its run folder), so leftovers can be found.
MARKER = "TICKETING_DEVSTACK_RUN"
REPORT_EVERY_SECONDS = 30.0
INFRA_GRACE_SECONDS = 3.0


class _StackManager(Manager):  # type: ignore[misc]
    """honcho's Manager, with a start hook and a stop in two stages.

    On stop, the services, worker and gateway get SIGTERM first and the servers they use
    (NATS, Redis, localstripe) once those have exited (at most `INFRA_GRACE_SECONDS`
    later), so the services close their connections cleanly. honcho's SIGKILL of whatever
    is left 5 s after the stop began still applies.

    A replica that exits (REPLICAS above 1) stops nothing while another replica of its
    service runs: the gateway sends its requests to the others, as a cluster does while a
    pod restarts. The last replica of a service to exit stops everything, as one process
    does with REPLICAS=1.
    """

    def __init__(
        self,
        printer: Any,
        on_started: Callable[[], None],
        infra: set[str],
        replicas: dict[str, str] | None = None,
    ) -> None:
        super().__init__(printer=printer)
        self._on_started = on_started
        self._infra = infra
        self._replicas = replicas or {}

    def _any_stopped(self) -> bool:
        processes: dict[str, dict[str, Any]] = self._processes
        stopped = {name for name, p in processes.items() if "returncode" in p}
        for name in stopped:
            group = self._replicas.get(name)
            if group is None or all(n in stopped for n, g in self._replicas.items() if g == group):
                return True
        return False

    def _start(self) -> None:
        super()._start()
        # Probing starts only now: no thread of ours is running while honcho forks.
        self._on_started()

    def pids(self) -> dict[str, int]:
        processes: dict[str, dict[str, Any]] = self._processes
        return {name: p["pid"] for name, p in processes.items() if p.get("pid")}

    def _killall(self, force: bool = False) -> None:
        if force:
            super()._killall(force=True)
            return
        apps = [name for name in self._processes if name not in self._infra]
        self._terminate(apps)
        threading.Thread(target=self._stop_infra, args=(apps,), daemon=True).start()

    def _stop_infra(self, apps: list[str]) -> None:
        deadline = time.monotonic() + INFRA_GRACE_SECONDS
        while time.monotonic() < deadline and any(
            "returncode" not in self._processes[name] for name in apps
        ):
            time.sleep(0.05)
        self._terminate([name for name in self._processes if name in self._infra])

    def _terminate(self, names: list[str]) -> None:
        for name in names:
            process = self._processes[name]
            if "returncode" in process or not process.get("pid"):
                continue
            now = datetime.datetime.now()
            text = f"sending SIGTERM to {name} (pid {process['pid']})\n"
            self.events.put(Message("line", text, now, SYSTEM_PRINTER_NAME, None))
            self._procmgr.terminate(process["pid"])


class Runner:
    """Runs `plan` until a signal or until one process exits; returns honcho's exit code."""

    def __init__(self, plan: Plan, *, state_file: Path | None = None) -> None:
        self.plan = plan
        self.state_file = state_file
        self.stopping = threading.Event()
        infra = {p.name for p in plan.processes if p.kind == "infra"}
        replicas = {p.name: p.replica_of for p in plan.processes if p.replica_of is not None}
        self.manager = _StackManager(Printer(sys.stdout), self._start_watching, infra, replicas)
        self.manager._printer.width = max(len(NAME), *(len(p.name) for p in plan.processes))

    def say(self, text: str) -> None:
        """A line in the log stream, under the runner's own name."""
        now = datetime.datetime.now()
        self.manager.events.put(Message("line", text + "\n", now, NAME, None))

    def run(self) -> int:
        plan = self.plan
        environ = {**os.environ, MARKER: str(plan.run_dir)}
        procfile_path = plan.run_dir / "Procfile"
        procfile_path.write_text(plan.procfile(environ))
        try:
            self.say(f"run folder {plan.run_dir} (Procfile, nginx.conf)")
            for warning in plan.warnings:
                self.say(f"warning: {warning}")
            if plan.missing:
                self.say(f"not built yet, left out: {', '.join(plan.missing)}")
            for name, command in parse_procfile(procfile_path.read_text()).processes.items():
                self.manager.add_process(name, command, env=environ)
            self.manager.loop()
        finally:
            self.stopping.set()
            self._kill_leftovers()
            shutil.rmtree(plan.run_dir, ignore_errors=True)
        code: int = self.manager.returncode or 0
        return code

    def _start_watching(self) -> None:
        threading.Thread(target=self._watch, name="devstack-ready", daemon=True).start()

    def _watch(self) -> None:
        started = time.monotonic()
        pending: list[ProcessSpec] = [p for p in self.plan.processes if p.probe is not None]
        next_report = started + REPORT_EVERY_SECONDS
        while not self.stopping.is_set():
            pending = [spec for spec in pending if not is_ready(spec)]
            if not pending:
                break
            if time.monotonic() >= next_report:
                next_report += REPORT_EVERY_SECONDS
                self.say(f"still waiting for {', '.join(p.name for p in pending)}")
            self.stopping.wait(0.2)
        if self.stopping.is_set():
            return
        elapsed = time.monotonic() - started
        if self.state_file is not None:
            state = {
                "gateway_url": self.plan.gateway_url,
                "pids": self.manager.pids(),
                "seconds": round(elapsed, 2),
            }
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.state_file)
        running = ", ".join(self.plan.services) or "no services built yet"
        self.say(
            f"{READY_MESSAGE} {self.plan.gateway_url} in {elapsed:.1f}s ({running}); "
            "Ctrl-C stops everything"
        )

    def _kill_leftovers(self) -> None:
        # Each process leads its own group (honcho starts it in a new session).
        kill_run(self.plan.run_dir, self.manager.pids().values())


def run_processes(run_dir: Path) -> list[int]:
    """Live processes (not zombies) started for the run whose folder is `run_dir`."""
    wanted = f"{MARKER}={run_dir}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def kill_run(run_dir: Path, groups: Iterable[int] = ()) -> list[int]:
    """SIGKILL the process `groups`, then every live process of the run whose folder is
    `run_dir`; the pids of the latter (what had survived the groups)."""
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    survivors = run_processes(run_dir)
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return survivors


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(plan: Plan, *, state_file: Path | None = None) -> int:
    """Run `plan` in the foreground (SIGTERM before honcho starts still cleans up)."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return Runner(plan, state_file=state_file).run()
    except KeyboardInterrupt:
        return 130
