"""Readiness checks of the stack's processes."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable

from ticketing_devstack.plan import CommandProbe, HttpProbe, ProcessSpec, TcpProbe

# A local stack: never go through an HTTP proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status `url` answers with, or None when nothing answers."""
    try:
        with _opener.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def is_ready(spec: ProcessSpec, timeout: float = 2.0) -> bool:
    """Whether the process's probe passes now (no probe: ready)."""
    probe = spec.probe
    if isinstance(probe, HttpProbe):
        return http_status(probe.url, timeout) == 200
    if isinstance(probe, TcpProbe):
        try:
            with socket.create_connection((probe.host, probe.port), timeout=timeout):
                return True
        except OSError:
            return False
    if isinstance(probe, CommandProbe):
        try:
            done = subprocess.run(
                probe.argv,
                env=spec.environ(None) | probe.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=max(timeout, 10.0),
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0
    return True


def wait_until_ready(specs: Iterable[ProcessSpec], timeout: float = 60.0) -> None:
    """Block until every process passes its probe (for processes started one by one)."""
    pending = list(specs)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [spec for spec in pending if not is_ready(spec)]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(spec.name for spec in pending)
            raise TimeoutError(f"not ready after {timeout:g}s: {names}")
        time.sleep(0.1)
