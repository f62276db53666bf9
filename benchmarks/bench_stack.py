"""The whole stack under load (`make bench`): throughput and latency through the gateway.

Run: `.venv/bin/python benchmarks/bench_stack.py [--concurrency 16] [--duration 10]
[--flow-duration 60] [--url http://127.0.0.1:8080 --localstripe-url http://127.0.0.1:8420]
[--write FILE] [--profile DIR] [--replicas N]`.

Without `--url` it starts the stack exactly as `make dev` does (free ports, its own NATS,
Redis and localstripe) and stops it at the end. Each scenario runs `--concurrency`
workers in a closed loop for `--duration` seconds (c and d: `--flow-duration`, so the first
and last 10 s can be compared) after a short warm-up; a worker waits for each answer
before sending the next request:

  a. bare: a bare FastAPI JSON endpoint (one uvicorn worker, like a service) behind a
     second nginx rendered from the gateway's own template: the ceiling here.
  b. ticket: GET /api/tickets/{id} through the gateway.
  c. purchase: one buyer per worker; create a ticket, order it (repeated while orders
     answers 404, until the ticket:created event has arrived), pay it with pm_card_visa
     (repeated while payments answers 404, until order:created has arrived).
  d. stripe: localstripe alone, a PaymentIntent created and confirmed in one request, as
     payments does it.

localstripe's cost grows with what it stores, so it is cleared before c and d. Event
propagation (ticket created until orders has its replica) is measured through orders'
public API: the time from the ticket's 201 until the first order request for it that
succeeds has answered (polling every 2 ms idle, 20 ms under load); it includes that
request's own round trip.
It is measured on an idle stack (one ticket at a time) and inside scenario c.

With `--replicas N` (`make bench REPLICAS=N`) the stack runs N processes of every HTTP
service and N expiration workers, as `make dev REPLICAS=N` does; each service's CPU is the
sum over its replicas, and `--write` fills the replicas section (one per N).

With `--profile DIR`, py-spy samples the stack's Python processes during b and c, and the
report splits each process's CPU per operation by layer (ASGI and FastAPI, pydantic, JWT,
database, NATS client, logging, ...); `--write` then fills the profile section only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ticketing_devstack.nginx import nginx_command, write_nginx_conf
from ticketing_devstack.plan import DEV_STRIPE_KEY, UVICORN_FLAGS, ProcessSpec, stop_process
from ticketing_devstack.routes import Route
from ticketing_devstack.servers import find_binary, free_port, wait_for_port
from ticketing_devstack.stack import Stack

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench_stack:begin -->"
END = "<!-- bench_stack:end -->"
# With --profile, --write fills this section instead (the profiler slows what it samples).
PROFILE_BEGIN = "<!-- bench_profile:begin -->"
PROFILE_END = "<!-- bench_profile:end -->"
# With --replicas N above 1, --write fills the section of that N.
REPLICAS_BEGIN = "<!-- bench_stack_replicas_{n}:begin -->"
REPLICAS_END = "<!-- bench_stack_replicas_{n}:end -->"
PASSWORD = "bench-pass-1234"
# Polling for a replica: finely on the idle stack (to time the event), gently under load
# (each poll is a request the services must serve too).
IDLE_POLL_SECONDS = 0.002
LOAD_POLL_SECONDS = 0.02
# The window of a long run whose rate and CPU are compared, first against last (seconds).
WINDOW = 10.0
# The devstack runner (honcho): it reads every process's output and writes the log.
RUNNER = "devstack runner"
# The Python processes py-spy samples with --profile, and how often (per second).
PROFILED = ("auth", "tickets", "orders", "payments", "expiration", "localstripe")
PROFILE_RATE = 100


class OpError(Exception):
    """One operation of a scenario failed (the message is counted as its error kind)."""


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float = 0.0
    # CPU time the load generator itself used, per second of the run (1.0 = one core).
    generator_cpu: float = 0.0
    # CPU seconds each process of the stack used during the measured part.
    server_cpu: dict[str, float] = field(default_factory=dict)
    # The same for the first and the last WINDOW seconds (runs of two windows or more).
    first_cpu: dict[str, float] = field(default_factory=dict)
    last_cpu: dict[str, float] = field(default_factory=dict)
    # Requests repeated because a replica was not there yet (404), by step.
    polls: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # When each successful operation finished, in seconds since the measured part began.
    finished: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def window_rate(self, start: float, end: float) -> float:
        """Operations per second finished between `start` and `end` s into the run."""
        done = sum(1 for t in self.finished if start <= t < end)
        return done / (end - start) if end > start else 0.0

    def last_vs_first(self, window: float = WINDOW) -> float | None:
        """Ops/s in the last `window` s over ops/s in the first (cost growing over the run
        shows as below 1); None when the run is shorter than two windows."""
        if self.seconds < 2 * window:
            return None
        first = self.window_rate(0.0, window)
        last = self.window_rate(self.seconds - window, self.seconds)
        return last / first if first else None

    def window_cpu_per_op(self, last: bool, exclude: tuple[str, ...] = ()) -> float | None:
        """ms of the stack's CPU per operation in the first (or last) window, without the
        processes in `exclude`."""
        cpu = self.last_cpu if last else self.first_cpu
        start = self.seconds - WINDOW if last else 0.0
        done = self.window_rate(start, start + WINDOW) * WINDOW
        if not cpu or not done:
            return None
        return 1000 * sum(v for n, v in cpu.items() if n not in exclude) / done


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def process_cpu_table() -> list[tuple[int, int, float]]:
    """(pid, parent pid, user + system CPU seconds) of every process, from one pass over /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, ..., utime (14th field of the line), stime.
        table.append((int(entry.name), int(fields[1]), (int(fields[11]) + int(fields[12])) / tick))
    return table


class CpuMeter:
    """CPU seconds the stack's processes (name -> pid) use between two snapshots, each with
    its direct children (nginx's workers), except the processes named in `alone` (the
    devstack runner, whose children are the whole stack)."""

    def __init__(self, pids: dict[str, int], alone: frozenset[str] = frozenset()) -> None:
        self.pids = pids
        self.alone = alone

    def snapshot(self) -> dict[str, float]:
        table = process_cpu_table()
        return {
            name: sum(
                cpu
                for pid, parent, cpu in table
                if pid == wanted or (parent == wanted and name not in self.alone)
            )
            for name, wanted in self.pids.items()
        }

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Per service: a replica's CPU (`tickets-2`) counts as its service's (`tickets`)."""
        used: dict[str, float] = {}
        for name in after:
            service = re.sub(r"-\d+$", "", name)
            used[service] = used.get(service, 0.0) + after[name] - before.get(name, after[name])
        return used


async def closed_loop(
    name: str,
    op: Callable[[int], Awaitable[None]],
    concurrency: int,
    duration: float,
    warmup: float,
    on_measure: Callable[[], None] | None = None,
) -> Result:
    """`concurrency` workers repeating `op` for `duration` seconds (after `warmup`);
    `on_measure` is called when the measured part begins."""
    result = Result(name, concurrency)
    loop = asyncio.get_running_loop()
    measuring = False
    measure_start = 0.0

    async def worker(number: int, until: float) -> None:
        while loop.time() < until:
            started = time.perf_counter()
            try:
                await op(number)
            except OpError as exc:
                if measuring:
                    result.errors[str(exc)] += 1
                continue
            except httpx.HTTPError as exc:
                if measuring:
                    result.errors[type(exc).__name__] += 1
                continue
            if measuring:
                now = time.perf_counter()
                result.latencies.append(now - started)
                result.finished.append(now - measure_start)

    if warmup > 0:
        until = loop.time() + warmup
        await asyncio.gather(*(worker(n, until) for n in range(concurrency)))
    measuring = True
    if on_measure is not None:
        on_measure()
    started, cpu = time.perf_counter(), time.process_time()
    measure_start = started
    until = loop.time() + duration
    await asyncio.gather(*(worker(n, until) for n in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.generator_cpu = (time.process_time() - cpu) / result.seconds
    return result


def expect(response: httpx.Response, status: int, what: str) -> httpx.Response:
    if response.status_code != status:
        raise OpError(f"{what}: {response.status_code}")
    return response


async def until_not_404(
    send: Callable[[], Awaitable[httpx.Response]], interval: float, polls: Counter[str], what: str
) -> httpx.Response:
    """Repeat `send` every `interval` s while it answers 404 (a replica not there yet), for
    at most 30 s; each 404 is counted in `polls[what]`."""
    deadline = time.monotonic() + 30
    while True:
        response = await send()
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        polls[what] += 1
        await asyncio.sleep(interval)


# -- the ceiling: a bare app behind its own nginx ------------------------------------------


@contextlib.contextmanager
def bare_gateway() -> Iterator[tuple[str, dict[str, int]]]:
    """The bare app and a second nginx with the gateway's template; yields its URL and
    the two processes' pids."""
    run_dir = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        app_port, gateway_port = free_port(), free_port()
        app = ProcessSpec(
            name="bare",
            kind="service",
            argv=[
                find_binary("uvicorn"),
                "bench_bare_app:app",
                *UVICORN_FLAGS,
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(app_port),
            ],
        )
        procs.append(app.popen(stdout=subprocess.DEVNULL))
        conf = write_nginx_conf(
            run_dir,
            routes=[Route("/?(.*)", "bare")],
            upstreams={"bare": app_port},
            listen_port=gateway_port,
        )
        nginx = ProcessSpec(
            name="bare-gateway",
            kind="gateway",
            argv=nginx_command(find_binary("nginx"), run_dir, conf),
        )
        procs.append(nginx.popen(stdout=subprocess.DEVNULL))
        wait_for_port(app_port, timeout=30)
        wait_for_port(gateway_port, timeout=30)
        pids = {"bare app": procs[0].pid, "bare nginx": procs[1].pid}
        yield f"http://127.0.0.1:{gateway_port}", pids
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        shutil.rmtree(run_dir, ignore_errors=True)


# -- scenarios -------------------------------------------------------------------------------


def client(base_url: str, concurrency: int, **kwargs: object) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=60.0,
        trust_env=False,
        **kwargs,  # type: ignore[arg-type]
    )


async def signed_up(base_url: str, concurrency: int) -> httpx.AsyncClient:
    http = client(base_url, concurrency)
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    expect(response, 201, "signup")
    return http


async def clear_localstripe(localstripe_url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.delete(f"{localstripe_url}/_config/data")
        response.raise_for_status()


@dataclass
class Run:
    gateway_url: str
    localstripe_url: str
    stripe_key: str
    concurrency: int
    duration: float
    # c and d run longer: whether a purchase costs more as data grows shows over time.
    flow_duration: float
    warmup: float
    propagation_samples: int
    stack_pids: dict[str, int] = field(default_factory=dict)
    # With --profile: py-spy samples the stack's Python processes during b and c.
    profile_dir: Path | None = None
    # Scenario key -> process name -> py-spy's raw output.
    profiles: dict[str, dict[str, Path]] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)
    propagation_idle: list[float] = field(default_factory=list)
    propagation_loaded: list[float] = field(default_factory=list)
    idle_polls: Counter[str] = field(default_factory=Counter)

    async def bare(self, bare_url: str, pids: dict[str, int]) -> None:
        async with client(bare_url, self.concurrency) as http:

            async def op(_: int) -> None:
                expect(await http.get("/api/bare"), 200, "GET /api/bare")

            self.results["a"] = await self._load(
                "a. bare FastAPI behind nginx", op, meter=CpuMeter(pids)
            )

    async def ticket(self, seller: httpx.AsyncClient) -> None:
        created = expect(
            await seller.post("/api/tickets", json={"title": "bench", "price": 10}), 201, "sell"
        )
        path = f"/api/tickets/{created.json()['id']}"
        async with client(self.gateway_url, self.concurrency) as http:

            async def op(_: int) -> None:
                expect(await http.get(path), 200, "GET /api/tickets/{id}")

            self.results["b"] = await self._load("b. GET /api/tickets/{id}", op, profile="b")

    async def propagation(self, seller: httpx.AsyncClient, buyer: httpx.AsyncClient) -> None:
        for number in range(self.propagation_samples):
            order_id = await self._sell_and_order(
                seller, buyer, number, self.propagation_idle, IDLE_POLL_SECONDS, self.idle_polls
            )
            # Cancelled, so the buyer stays below MAX_OPEN_ORDERS_PER_USER open orders.
            expect(await buyer.delete(f"/api/orders/{order_id}"), 204, "cancel")
            await asyncio.sleep(0.02)

    async def purchase(self, seller: httpx.AsyncClient, buyers: list[httpx.AsyncClient]) -> None:
        await clear_localstripe(self.localstripe_url)
        sink: list[float] = []
        polls: Counter[str] = Counter()

        async def op(number: int) -> None:
            # One buyer per worker: each holds one open order at a time.
            buyer = buyers[number % len(buyers)]
            order_id = await self._sell_and_order(
                seller, buyer, number, sink, LOAD_POLL_SECONDS, polls
            )
            body = {"orderId": order_id, "token": "pm_card_visa"}
            paid = await until_not_404(
                lambda: buyer.post("/api/payments", json=body), LOAD_POLL_SECONDS, polls, "pay"
            )
            expect(paid, 201, "pay")

        result = await self._load(
            "c. purchase (sell, order, pay)",
            op,
            sink,
            polls=polls,
            duration=self.flow_duration,
            profile="c",
        )
        self.results["c"] = result

    async def stripe(self) -> None:
        await clear_localstripe(self.localstripe_url)
        async with client(
            self.localstripe_url, self.concurrency, auth=(self.stripe_key, "")
        ) as http:

            async def op(number: int) -> None:
                form = {
                    "amount": "1000",
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "payment_method_types[]": "card",
                    "confirm": "true",
                    "metadata[orderId]": f"bench-{number}",
                }
                response = await http.post("/v1/payment_intents", data=form)
                expect(response, 200, "POST /v1/payment_intents")
                if response.json()["status"] != "succeeded":
                    raise OpError(f"payment intent {response.json()['status']}")

            self.results["d"] = await self._load(
                "d. localstripe PaymentIntent (confirm)", op, duration=self.flow_duration
            )

    async def _sell_and_order(
        self,
        seller: httpx.AsyncClient,
        buyer: httpx.AsyncClient,
        number: int,
        sink: list[float],
        interval: float,
        polls: Counter[str],
    ) -> str:
        body = {"title": f"bench {number}", "price": "19.99"}
        created = expect(await seller.post("/api/tickets", json=body), 201, "sell")
        sold_at = time.perf_counter()
        ticket = {"ticketId": created.json()["id"]}
        order = await until_not_404(
            lambda: buyer.post("/api/orders", json=ticket), interval, polls, "order"
        )
        expect(order, 201, "order")
        sink.append(time.perf_counter() - sold_at)
        order_id: str = order.json()["id"]
        return order_id

    async def _load(
        self,
        name: str,
        op: Callable[[int], Awaitable[None]],
        sink: list[float] | None = None,
        meter: CpuMeter | None = None,
        polls: Counter[str] | None = None,
        duration: float | None = None,
        profile: str | None = None,
    ) -> Result:
        duration = duration or self.duration
        print(f"running {name} for {duration:g} s ...", file=sys.stderr, flush=True)
        meter = meter or CpuMeter(self.stack_pids, alone=frozenset({RUNNER}))
        before: dict[str, float] = {}
        profilers: list[subprocess.Popen[bytes]] = []

        windows: list[asyncio.Task[dict[str, float]]] = []

        async def snapshot_at(seconds: float) -> dict[str, float]:
            await asyncio.sleep(seconds)
            return meter.snapshot()

        def on_measure() -> None:
            # Only the measured part counts (the warm-up comes first).
            if sink is not None:
                sink.clear()
            if polls is not None:
                polls.clear()
            before.update(meter.snapshot())
            if duration >= 2 * WINDOW:
                windows.extend(
                    asyncio.create_task(snapshot_at(t)) for t in (WINDOW, duration - WINDOW)
                )
            if profile and self.profile_dir is not None:
                profilers.extend(self._start_profilers(self.profile_dir, profile, duration))

        result = await closed_loop(name, op, self.concurrency, duration, self.warmup, on_measure)
        after = meter.snapshot()
        result.server_cpu = CpuMeter.used(before, after)
        if windows:
            first_end, last_start = await asyncio.gather(*windows)
            result.first_cpu = CpuMeter.used(before, first_end)
            result.last_cpu = CpuMeter.used(last_start, after)
        for proc in profilers:
            proc.wait(timeout=60)
        result.polls = Counter(polls or {})
        if sink is not None:
            self.propagation_loaded = list(sink)
        return result

    def _start_profilers(
        self, folder: Path, key: str, duration: float
    ) -> list[subprocess.Popen[bytes]]:
        """py-spy on every Python process of the stack, for `duration` s (collapsed
        stacks, one file per process; --nonblocking: the process is never paused)."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        folder.mkdir(parents=True, exist_ok=True)
        procs = []
        for name in PROFILED:
            pid = self.stack_pids.get(name)
            if pid is None:
                continue
            out = folder / f"{key}-{name}.txt"
            self.profiles.setdefault(key, {})[name] = out
            argv = [py_spy, "record", "--nonblocking", "--rate", str(PROFILE_RATE)]
            argv += ["--duration", str(int(duration)), "--format", "raw", "--full-filenames"]
            procs.append(
                subprocess.Popen(
                    [*argv, "--output", str(out), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return procs


async def run_all(run: Run, bare_url: str, bare_pids: dict[str, int]) -> None:
    await run.bare(bare_url, bare_pids)
    seller = await signed_up(run.gateway_url, run.concurrency)
    # One buyer per worker of c (16 concurrent buyers), each on its own connection.
    buyers = [await signed_up(run.gateway_url, 1) for _ in range(run.concurrency)]
    try:
        await run.ticket(seller)
        print("measuring event propagation on the idle stack ...", file=sys.stderr, flush=True)
        await run.propagation(seller, buyers[0])
        await run.purchase(seller, buyers)
        await run.stripe()
    finally:
        await seller.aclose()
        for buyer in buyers:
            await buyer.aclose()


# -- profile -----------------------------------------------------------------------------------

# Where a sample's CPU goes: the innermost frame from one of these (a substring of its
# file's path) names the layer; frames of the rest of the standard library (copy, json,
# re, asyncio, threading, ...) and of SKIPPED count for whoever called them.
LAYERS = (
    ("/argon2/", "argon2"),
    ("/jwt/", "JWT"),
    ("/pydantic", "pydantic"),
    ("/ticketing_common/events/outbox", "outbox"),
    ("/mongomock", "database"),
    ("/ticketing_common/memory_database", "database"),
    ("/bson/", "database"),
    ("/pymongo/", "database"),
    ("/nats/", "NATS client"),
    ("/opentelemetry/", "tracing (OpenTelemetry)"),
    ("/ticketing_common/tracing", "tracing (OpenTelemetry)"),
    ("/prometheus_client/", "metrics (Prometheus)"),
    ("/ticketing_common/metrics", "metrics (Prometheus)"),
    ("/logging/", "logging"),
    # FastAPI runs a dependency declared with `def` in a worker thread: the hand-off.
    ("/anyio/to_thread.py", "thread hand-off (sync dependencies)"),
    ("/starlette/concurrency.py", "thread hand-off (sync dependencies)"),
    ("/starlette/", "ASGI and FastAPI"),
    ("/fastapi/", "ASGI and FastAPI"),
    ("/uvicorn/", "ASGI and FastAPI"),
    ("/httptools/", "ASGI and FastAPI"),
    ("/h11/", "ASGI and FastAPI"),
    ("/httpx/", "HTTP client (Stripe)"),
    ("/httpcore/", "HTTP client (Stripe)"),
    ("/stripe/", "HTTP client (Stripe)"),
    ("/arq/", "arq and Redis"),
    ("/redis/", "arq and Redis"),
    ("/localstripe/", "localstripe"),
    ("/aiohttp/", "aiohttp (localstripe's server)"),
)
SKIPPED = ("/anyio/", "/sniffio/", "/packaging/")
SERVICE_CODE = "service code"
EVENT_LOOP = "event loop (Python part)"
STDLIB_MARK = "/lib/python3"
# Innermost frames py-spy shows for a thread waiting (it cannot tell with --nonblocking):
# uvloop's loop (native: its waits and its own socket work alike), a worker thread
# waiting for work, asyncio's selector. Left out of the shares.
IDLE_LEAVES = ("Runner.run (", "Condition.wait (", "EpollSelector.select (")


def frame_file(frame: str) -> str:
    """The file of a py-spy frame `function (path:line)`."""
    inside = frame.rsplit(" (", 1)[-1].rstrip(")")
    return inside.rsplit(":", 1)[0]


def layer_of(stack: list[str]) -> str:
    """The layer a sample's stack (outermost frame first) spends its CPU in."""
    for frame in reversed(stack):
        path = frame_file(frame)
        for mark, layer in LAYERS:
            if mark in path:
                return layer
        if any(mark in path for mark in SKIPPED) or STDLIB_MARK in path:
            continue  # works for its caller
        if "/site-packages/" in path:
            return path.split("/site-packages/", 1)[1].split("/", 1)[0]
        return SERVICE_CODE
    return EVENT_LOOP


def read_profile(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples by layer and by innermost frame, from py-spy's raw (collapsed) output, and
    the count of idle ones (left out of both)."""
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    idle = 0
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack_text, _, count = line.rpartition(" ")
            if not stack_text or not count.isdigit():
                continue
            # py-spy puts the thread first (`process ...;thread ...;frames`), then frames.
            stack = [f for f in stack_text.split(";") if " (" in f]
            if not stack:
                continue
            if stack[-1].startswith(IDLE_LEAVES):
                idle += int(count)
                continue
            layers[layer_of(stack)] += int(count)
            leaf = stack[-1]
            name, _, where = leaf.rpartition(" (")
            short = where.split("/site-packages/")[-1].split(STDLIB_MARK)[-1]
            leaves[f"{name} ({short}"] += int(count)
    return layers, leaves, idle


def profile_report(run: Run) -> list[str]:
    """Per scenario profiled and process: CPU per operation split by layer (its py-spy
    samples' shares of the CPU time measured from /proc), and its top frames."""
    lines = []
    for key, profiles in run.profiles.items():
        result = run.results.get(key)
        if result is not None and result.latencies:
            lines += scenario_profile(result, profiles)
    return lines


def scenario_profile(c: Result, profiles: dict[str, Path]) -> list[str]:
    lines = [
        f"Profile of {c.name} (py-spy {PROFILE_RATE} samples/s, --nonblocking, "
        f"{c.seconds:.0f} s): ms of CPU per operation by layer, each process's measured CPU "
        "split by the shares of its samples that were not idle (uvloop's own native work, "
        "which py-spy cannot tell from its waits, is spread over the layers that way):",
        "",
        "| process | ms/op | idle samples | by layer (ms/op) |",
        "|---|---:|---:|---|",
    ]
    totals: dict[str, float] = {}
    tops: list[str] = []
    for name, path in profiles.items():
        layers, leaves, idle = read_profile(path)
        samples = sum(layers.values())
        per_op = cpu_per_op(c, name)
        if not samples or per_op is None or per_op < 0.05:
            continue
        parts = []
        for layer, count in layers.most_common():
            share = per_op * count / samples
            totals[layer] = totals.get(layer, 0.0) + share
            if share >= 0.05:
                parts.append(f"{layer} {share:.2f}")
        lines.append(
            f"| {name} | {per_op:.2f} | {idle / (idle + samples):.0%} | {', '.join(parts)} |"
        )
        top = ", ".join(
            f"`{frame}` {count / samples:.0%}" for frame, count in leaves.most_common(6)
        )
        tops.append(f"- {name}: {top}")
    lines += [
        "",
        "All profiled processes together, ms of CPU per operation: "
        + ", ".join(
            f"{layer} {ms_:.2f}"
            for layer, ms_ in sorted(totals.items(), key=lambda kv: -kv[1])
            if ms_ >= 0.05
        ),
        "",
        "Top frames (innermost function, share of the process's samples that were not idle):",
        "",
        *tops,
        "",
    ]
    return lines


# -- report ------------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nginx = subprocess.run(
        [find_binary("nginx"), "-v"], capture_output=True, text=True
    ).stderr.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, {nginx.replace('nginx version: ', '')}",
        f"- load average when the run started: {load}",
    ]


def cpu_per_op(result: Result, process: str) -> float | None:
    """ms of `process`'s CPU time per successful operation of `result`."""
    if process not in result.server_cpu or not result.latencies:
        return None
    return 1000 * result.server_cpu[process] / len(result.latencies)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(run: Run, header: list[str]) -> str:
    lines = [
        *header,
        f"- concurrency {run.concurrency}, {run.duration:g} s for a and b, "
        f"{run.flow_duration:g} s for c and d, each after a {run.warmup:g} s warm-up, "
        "closed loop (async httpx, one process)",
        "",
        "| scenario | ops/s | p50 ms | p95 ms | p99 ms | ops | errors | generator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in "abcd":
        r = run.results.get(key)
        if r is None:
            continue
        errors = sum(r.errors.values())
        lines.append(
            f"| {r.name} | {r.rate:.1f} | {ms(r.percentile(50))} | {ms(r.percentile(95))} "
            f"| {ms(r.percentile(99))} | {len(r.latencies)} | {errors} "
            f"| {r.generator_cpu:.0%} |"
        )
    lines.append("")
    if any(r.server_cpu for r in run.results.values()):
        lines += [
            "Server CPU per operation (ms of CPU time per successful operation, processes "
            "using at least 2 % of a core; the generator's own is in the table above):",
            "",
            "| scenario | total | by process |",
            "|---|---:|---|",
        ]
        for key in "abcd":
            r = run.results.get(key)
            if r is None or not r.server_cpu or not r.latencies:
                continue
            per_op = {n: 1000 * cpu / len(r.latencies) for n, cpu in r.server_cpu.items()}
            busy = sorted(
                (n for n, cpu in r.server_cpu.items() if cpu / r.seconds >= 0.02),
                key=lambda n: -per_op[n],
            )
            parts = ", ".join(f"{n} {per_op[n]:.2f}" for n in busy)
            lines.append(f"| {r.name} | {sum(per_op.values()):.2f} | {parts} |")
        lines.append("")
    a, b, c, d = (run.results.get(k) for k in "abcd")
    goals: list[str] = []

    def goal(text: str, value: float, target: float, higher: bool = True) -> None:
        met = value >= target if higher else value < target
        sign = ">=" if higher else "<"
        goals.append(f"- {text}: {value:.2f} (goal {sign} {target:g}): {'met' if met else 'short'}")

    if a and b and a.rate:
        lines.append(f"- b/a (ticket read vs the ceiling, ops/s): {b.rate / a.rate:.2f}")
        goal("ticket read / bare endpoint, ops/s", b.rate / a.rate, 0.8)
        cpu_a, cpu_b = cpu_per_op(a, "bare app"), cpu_per_op(b, "tickets")
        if cpu_a and cpu_b:
            lines.append(
                f"- service CPU per request: bare app {cpu_a:.2f} ms, tickets {cpu_b:.2f} ms "
                f"({cpu_b / cpu_a:.2f}x), so with CPU as the limit b/a would be "
                f"{cpu_a / cpu_b:.2f}"
            )
            goal("tickets CPU per read / bare app's", cpu_b / cpu_a, 1.5, higher=False)
    if c and d and d.rate:
        lines.append(f"- c/d (purchase flow vs bare localstripe, ops/s): {c.rate / d.rate:.2f}")
        goal("purchase flows / bare PaymentIntents, ops/s", c.rate / d.rate, 0.8)
    if c and c.latencies:
        goal("purchase flow p95, ms", c.percentile(95) * 1000, 250, higher=False)
    for r in (c, d):
        ratio = r.last_vs_first() if r else None
        if r and ratio is not None:
            lines.append(
                f"- {r.name}: {r.window_rate(0, 10):.1f} ops/s in the first 10 s, "
                f"{r.window_rate(r.seconds - 10, r.seconds):.1f} in the last 10 s: "
                f"last/first {ratio:.2f}"
            )
            if r is c:
                goal("purchase flows/s, last 10 s / first 10 s", ratio, 0.9)
                ours = ("localstripe",)
                first_cpu = r.window_cpu_per_op(last=False, exclude=ours)
                last_cpu = r.window_cpu_per_op(last=True, exclude=ours)
                stripe_first = r.window_cpu_per_op(last=False, exclude=_others(r, "localstripe"))
                stripe_last = r.window_cpu_per_op(last=True, exclude=_others(r, "localstripe"))
                if first_cpu and last_cpu and stripe_first and stripe_last:
                    lines.append(
                        f"  - CPU per purchase of the stack without localstripe: "
                        f"{first_cpu:.1f} ms in the first 10 s, {last_cpu:.1f} ms in the last "
                        f"(last/first {last_cpu / first_cpu:.2f}); localstripe's: "
                        f"{stripe_first:.1f} ms, then {stripe_last:.1f} ms "
                        f"({stripe_last / stripe_first:.2f})"
                    )
    for label, samples, polls in (
        ("idle stack, one ticket at a time", run.propagation_idle, run.idle_polls),
        ("during scenario c", run.propagation_loaded, c.polls if c else Counter()),
    ):
        if samples:
            lines.append(
                f"- event propagation ({label}, {len(samples)} tickets): "
                f"p50 {ms(percentile(samples, 50))} ms, p95 {ms(percentile(samples, 95))} ms, "
                f"p99 {ms(percentile(samples, 99))} ms; "
                f"order requests answered 404 (replica not there yet): "
                f"{polls['order'] / len(samples):.2f} per ticket"
            )
    if run.propagation_loaded:
        goal(
            "event propagation p99 under load, ms",
            1000 * percentile(run.propagation_loaded, 99),
            50,
            higher=False,
        )
    if c and c.latencies:
        lines.append(
            f"- purchase: payments answered 404 (order replica not there yet) "
            f"{c.polls['pay'] / len(c.latencies):.2f} times per operation"
        )
    for r in run.results.values():
        if r.errors:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in r.errors.most_common(5))
            lines.append(f"- errors in {r.name}: {kinds}")
    if goals:
        lines += ["", "Goals of issue 16, from this run:", "", *goals]
    return "\n".join(lines) + "\n"


def _others(result: Result, name: str) -> tuple[str, ...]:
    return tuple(n for n in result.server_cpu if n != name)


def write_section(path: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the marked section of `path` (or append one) with `text`."""
    block = f"{begin}\n{text}{end}"
    current = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current + ("\n" if current and not current.endswith("\n") else "") + block + "\n"
    path.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds for a and b")
    parser.add_argument(
        "--flow-duration", type=float, default=60.0, help="seconds for c and d (the purchase)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--propagation-samples", type=int, default=200)
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--localstripe-url", default="http://127.0.0.1:8420")
    parser.add_argument("--stripe-key", default=DEV_STRIPE_KEY)
    parser.add_argument("--write", type=Path, help="also write the report into this file")
    parser.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("REPLICAS") or 1),
        help="processes per HTTP service and expiration workers, as make dev REPLICAS=N "
        "(default: $REPLICAS, else 1; a stack given by --url runs what it runs)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the stack's Python processes with py-spy (a dev dependency) during b "
        "and c, keep the raw stacks in DIR and report CPU per operation by layer; the "
        "profiler's own cost lowers the figures, so --write then fills the profile section",
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.flow_duration <= 0:
        parser.error("--concurrency, --duration and --flow-duration must be positive")
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")

    header = machine()
    stack_pids: dict[str, int] = {}
    # The stack (when started here) stops last; its log is kept and named after a failure.
    with contextlib.ExitStack() as running:
        if args.url:
            gateway_url = args.url.rstrip("/")
            localstripe_url = args.localstripe_url.rstrip("/")
            header.append(f"- stack: running at {gateway_url}, localstripe at {localstripe_url}")
        else:
            print("starting the stack as make dev does ...", file=sys.stderr, flush=True)
            stack = running.enter_context(Stack(replicas=args.replicas))
            gateway_url = stack.gateway_url
            assert stack.localstripe_url is not None
            localstripe_url = stack.localstripe_url
            stack_pids = dict(stack.pids)
            if stack.proc is not None:
                stack_pids[RUNNER] = stack.proc.pid
            header.append(
                "- stack: started by the benchmark as `make dev` runs it "
                "(one uvicorn worker per service, MONGO_URI=memory://, localstripe)"
                if args.replicas == 1
                else f"- stack: started by the benchmark as `make dev REPLICAS={args.replicas}` "
                f"runs it ({args.replicas} uvicorn processes per HTTP service behind the "
                f"gateway, {args.replicas} expiration workers, each service's database in "
                "one mongo_wire, localstripe); a service's CPU is summed over its replicas"
            )
        run = Run(
            gateway_url=gateway_url,
            localstripe_url=localstripe_url,
            stripe_key=args.stripe_key,
            concurrency=args.concurrency,
            duration=args.duration,
            flow_duration=args.flow_duration,
            warmup=args.warmup,
            propagation_samples=args.propagation_samples,
            stack_pids=stack_pids,
            profile_dir=args.profile,
        )
        bare_url, bare_pids = running.enter_context(bare_gateway())
        asyncio.run(run_all(run, bare_url, bare_pids))
    text = report(run, header)
    if args.profile:
        text = "\n".join([*header, "", *profile_report(run)]) + "\n\n" + text
    print(text)
    if args.write:
        if args.profile:
            write_section(args.write, text, PROFILE_BEGIN, PROFILE_END)
        elif args.replicas > 1:
            n = args.replicas
            write_section(args.write, text, REPLICAS_BEGIN.format(n=n), REPLICAS_END.format(n=n))
        else:
            write_section(args.write, text)
        print(f"written to {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
