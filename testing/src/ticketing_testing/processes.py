"""Single processes of a `make dev` plan, started one by one with the very commands and
environments `make dev` runs (`build_plan`), for the fault tests to stop, kill and restart."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from ticketing_devstack.plan import Plan, ProcessSpec, build_plan, stop_process
from ticketing_devstack.probes import wait_until_ready
from ticketing_devstack.runner import MARKER, kill_run
from ticketing_devstack.stack import isolated_environ


class Processes:
    """Processes of a `make dev` plan, started one by one with the Procfile's command and
    environment, each logging to its own file; `close()` stops every one of them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.environ = isolated_environ(env)
        self.plan: Plan = build_plan(self.environ)
        # As the runner marks them: every process of the run can be found by its folder.
        self.environ[MARKER] = str(self.plan.run_dir)
        self.log_dir = Path(self.plan.run_dir) / "logs"
        self.log_dir.mkdir()
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def spec(self, name: str) -> ProcessSpec:
        return self.plan.process(name)

    def url(self, name: str) -> str:
        url = self.spec(name).url
        assert url is not None, name
        return url

    def start(self, *names: str, timeout: float = 60.0) -> None:
        """Start the named processes (in order) and wait until each passes its probe."""
        for name in names:
            assert name not in self.running, f"{name} is already running"
            spec = self.spec(name)
            with (self.log_dir / f"{name}.log").open("ab") as log:
                self.running[name] = spec.popen(env=self.environ, stdout=log, cwd=self.plan.root)
        try:
            wait_until_ready([self.spec(name) for name in names], timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.tail(*names)}") from None

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        """Signal the process (SIGKILL: kill -9) and wait until it has exited."""
        return stop_process(self.running.pop(name), sig)

    def kill(self, name: str) -> int:
        return self.stop(name, signal.SIGKILL)

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")
        return ""

    def tail(self, *names: str, lines: int = 30) -> str:
        parts = []
        for name in names or tuple(self.running):
            text = "\n".join(self.log(name).splitlines()[-lines:])
            parts.append(f"--- {name} log ---\n{text}")
        return "\n".join(parts)

    def close(self) -> list[str]:
        """Stop everything this object started; what is still alive afterwards (empty)."""
        for name in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(name)
        left = [f"process {pid}" for pid in kill_run(self.plan.run_dir)]
        shutil.rmtree(self.plan.run_dir, ignore_errors=True)
        return left


@contextlib.contextmanager
def processes(env: Mapping[str, str] | None = None) -> Iterator[Processes]:
    """`Processes` for one test: stopped at the end whatever happens, logs shown on failure."""
    procs = Processes(env)
    try:
        yield procs
    except BaseException:
        print(procs.tail(*procs.running, lines=80))
        raise
    finally:
        left = procs.close()
    assert left == [], f"still running after the test: {left}"
