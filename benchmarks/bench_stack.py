"""The whole stack under load (`make bench`): throughput and latency through the gateway.

Run: `.venv/bin/python benchmarks/bench_stack.py [--concurrency 16] [--duration 10]
[--url http://127.0.0.1:8080 --localstripe-url http://127.0.0.1:8420] [--write FILE]`.

Without `--url` it starts the stack exactly as `make dev` does (free ports, its own NATS,
Redis and localstripe) and stops it at the end. Each scenario runs `--concurrency`
workers in a closed loop for `--duration` seconds after a short warm-up; a worker waits for
each answer before sending the next request:

  a. bare: a bare FastAPI JSON endpoint (one uvicorn worker, like a service) behind a
     second nginx rendered from the gateway's own template: the ceiling here.
  b. ticket: GET /api/tickets/{id} through the gateway.
  c. purchase: create a ticket, order it (repeated while orders answers 404, until the
     ticket:created event has arrived), pay it with pm_card_visa (repeated while payments
     answers 404, until order:created has arrived).
  d. stripe: localstripe alone, a PaymentIntent created and confirmed in one request, as
     payments does it.

localstripe's cost grows with what it stores, so it is cleared before c and d. Event
propagation (ticket created until orders has its replica) is measured through orders'
public API: the time from the ticket's 201 until the first order request for it that
succeeds has answered (polling every 2 ms idle, 20 ms under load); it includes that
request's own round trip.
It is measured on an idle stack (one ticket at a time) and inside scenario c.
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
from ticketing_devstack.plan import DEV_STRIPE_KEY, ProcessSpec, stop_process
from ticketing_devstack.routes import Route
from ticketing_devstack.servers import find_binary, free_port, wait_for_port
from ticketing_devstack.stack import Stack

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench_stack:begin -->"
END = "<!-- bench_stack:end -->"
PASSWORD = "bench-pass-1234"
# Polling for a replica: finely on the idle stack (to time the event), gently under load
# (each poll is a request the services must serve too).
IDLE_POLL_SECONDS = 0.002
LOAD_POLL_SECONDS = 0.02


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
    # Requests repeated because a replica was not there yet (404), by step.
    polls: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


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
    its direct children (nginx's workers)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def snapshot(self) -> dict[str, float]:
        table = process_cpu_table()
        return {
            name: sum(cpu for pid, parent, cpu in table if wanted in (pid, parent))
            for name, wanted in self.pids.items()
        }

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: after[name] - before.get(name, after[name]) for name in after}


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
                result.latencies.append(time.perf_counter() - started)

    if warmup > 0:
        until = loop.time() + warmup
        await asyncio.gather(*(worker(n, until) for n in range(concurrency)))
    measuring = True
    if on_measure is not None:
        on_measure()
    started, cpu = time.perf_counter(), time.process_time()
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
    warmup: float
    propagation_samples: int
    stack_pids: dict[str, int] = field(default_factory=dict)
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

            self.results["b"] = await self._load("b. GET /api/tickets/{id}", op)

    async def propagation(self, seller: httpx.AsyncClient, buyer: httpx.AsyncClient) -> None:
        for number in range(self.propagation_samples):
            await self._sell_and_order(
                seller, buyer, number, self.propagation_idle, IDLE_POLL_SECONDS, self.idle_polls
            )
            await asyncio.sleep(0.02)

    async def purchase(self, seller: httpx.AsyncClient, buyer: httpx.AsyncClient) -> None:
        await clear_localstripe(self.localstripe_url)
        sink: list[float] = []
        polls: Counter[str] = Counter()

        async def op(number: int) -> None:
            order_id = await self._sell_and_order(
                seller, buyer, number, sink, LOAD_POLL_SECONDS, polls
            )
            body = {"orderId": order_id, "token": "pm_card_visa"}
            paid = await until_not_404(
                lambda: buyer.post("/api/payments", json=body), LOAD_POLL_SECONDS, polls, "pay"
            )
            expect(paid, 201, "pay")

        result = await self._load("c. purchase (sell, order, pay)", op, sink, polls=polls)
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

            self.results["d"] = await self._load("d. localstripe PaymentIntent (confirm)", op)

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
    ) -> Result:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        meter = meter or CpuMeter(self.stack_pids)
        before: dict[str, float] = {}

        def on_measure() -> None:
            # Only the measured part counts (the warm-up comes first).
            if sink is not None:
                sink.clear()
            if polls is not None:
                polls.clear()
            before.update(meter.snapshot())

        result = await closed_loop(
            name, op, self.concurrency, self.duration, self.warmup, on_measure
        )
        result.server_cpu = CpuMeter.used(before, meter.snapshot())
        result.polls = Counter(polls or {})
        if sink is not None:
            self.propagation_loaded = list(sink)
        return result


async def run_all(run: Run, bare_url: str, bare_pids: dict[str, int]) -> None:
    await run.bare(bare_url, bare_pids)
    seller = await signed_up(run.gateway_url, run.concurrency)
    buyer = await signed_up(run.gateway_url, run.concurrency)
    try:
        await run.ticket(seller)
        print("measuring event propagation on the idle stack ...", file=sys.stderr, flush=True)
        await run.propagation(seller, buyer)
        await run.purchase(seller, buyer)
        await run.stripe()
    finally:
        await seller.aclose()
        await buyer.aclose()


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
        f"- concurrency {run.concurrency}, {run.duration:g} s per scenario after a "
        f"{run.warmup:g} s warm-up, closed loop (async httpx, one process)",
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
    if a and b and a.rate:
        lines.append(f"- b/a (ticket read vs the ceiling, ops/s): {b.rate / a.rate:.2f}")
        cpu_a, cpu_b = cpu_per_op(a, "bare app"), cpu_per_op(b, "tickets")
        if cpu_a and cpu_b:
            lines.append(
                f"- service CPU per request: bare app {cpu_a:.2f} ms, tickets {cpu_b:.2f} ms, "
                f"so with CPU as the limit b/a would be {cpu_a / cpu_b:.2f}"
            )
    if c and d and d.rate:
        lines.append(f"- c/d (purchase flow vs bare localstripe, ops/s): {c.rate / d.rate:.2f}")
    for label, samples, polls in (
        ("idle stack, one ticket at a time", run.propagation_idle, run.idle_polls),
        ("during scenario c", run.propagation_loaded, c.polls if c else Counter()),
    ):
        if samples:
            lines.append(
                f"- event propagation ({label}, {len(samples)} tickets): "
                f"p50 {ms(percentile(samples, 50))} ms, p99 {ms(percentile(samples, 99))} ms; "
                f"order requests answered 404 (replica not there yet): "
                f"{polls['order'] / len(samples):.2f} per ticket"
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
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the marked section of `path` (or append one) with `text`."""
    block = f"{BEGIN}\n{text}{END}"
    current = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current + ("\n" if current and not current.endswith("\n") else "") + block + "\n"
    path.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--propagation-samples", type=int, default=200)
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--localstripe-url", default="http://127.0.0.1:8420")
    parser.add_argument("--stripe-key", default=DEV_STRIPE_KEY)
    parser.add_argument("--write", type=Path, help="also write the report into this file")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0:
        parser.error("--concurrency and --duration must be positive")

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
            stack = running.enter_context(Stack())
            gateway_url = stack.gateway_url
            assert stack.localstripe_url is not None
            localstripe_url = stack.localstripe_url
            stack_pids = dict(stack.pids)
            header.append(
                "- stack: started by the benchmark as `make dev` runs it "
                "(one uvicorn worker per service, MONGO_URI=memory://, localstripe)"
            )
        run = Run(
            gateway_url=gateway_url,
            localstripe_url=localstripe_url,
            stripe_key=args.stripe_key,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            propagation_samples=args.propagation_samples,
            stack_pids=stack_pids,
        )
        bare_url, bare_pids = running.enter_context(bare_gateway())
        asyncio.run(run_all(run, bare_url, bare_pids))
    text = report(run, header)
    print(text)
    if args.write:
        write_section(args.write, text)
        print(f"written to {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
