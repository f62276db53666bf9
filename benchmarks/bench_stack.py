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
succeeds has answered, polling every 2 ms; it includes that request's own round trip.
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

from ticketing_common.testing.servers import find_binary, free_port, wait_for_port
from ticketing_devstack.nginx import TEMPLATE, nginx_command, prepare_run_dir, render_nginx_conf
from ticketing_devstack.plan import DEV_STRIPE_KEY, ProcessSpec, stop_process
from ticketing_devstack.routes import Route, repo_root
from ticketing_devstack.stack import Stack

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench_stack:begin -->"
END = "<!-- bench_stack:end -->"
PASSWORD = "bench-pass-1234"
POLL_SECONDS = 0.002


class OpError(Exception):
    """One operation of a scenario failed (the message is counted as its error kind)."""


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float = 0.0
    # CPU time the load generator itself used, per second of the run (1.0 = one core).
    generator_cpu: float = 0.0
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


async def until_not_404(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Repeat `send` while it answers 404 (a replica not there yet), for at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        response = await send()
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(POLL_SECONDS)


# -- the ceiling: a bare app behind its own nginx ------------------------------------------


@contextlib.contextmanager
def bare_gateway() -> Iterator[str]:
    """The bare app and a second nginx with the gateway's template; yields its URL."""
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
        prepare_run_dir(run_dir)
        conf = run_dir / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                routes=[Route("/?(.*)", "bare")],
                upstreams={"bare": app_port},
                listen_port=gateway_port,
                run_dir=run_dir,
                template=repo_root() / TEMPLATE,
            )
        )
        nginx = ProcessSpec(
            name="bare-gateway",
            kind="gateway",
            argv=nginx_command(find_binary("nginx"), run_dir, conf),
        )
        procs.append(nginx.popen(stdout=subprocess.DEVNULL))
        wait_for_port(app_port, timeout=30)
        wait_for_port(gateway_port, timeout=30)
        yield f"http://127.0.0.1:{gateway_port}"
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
    results: dict[str, Result] = field(default_factory=dict)
    propagation_idle: list[float] = field(default_factory=list)
    propagation_loaded: list[float] = field(default_factory=list)

    async def bare(self, bare_url: str) -> None:
        async with client(bare_url, self.concurrency) as http:

            async def op(_: int) -> None:
                expect(await http.get("/api/bare"), 200, "GET /api/bare")

            self.results["a"] = await self._load("a. bare FastAPI behind nginx", op)

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
            await self._sell_and_order(seller, buyer, number, self.propagation_idle)
            await asyncio.sleep(0.02)

    async def purchase(self, seller: httpx.AsyncClient, buyer: httpx.AsyncClient) -> None:
        await clear_localstripe(self.localstripe_url)
        sink: list[float] = []

        async def op(number: int) -> None:
            order_id = await self._sell_and_order(seller, buyer, number, sink)
            body = {"orderId": order_id, "token": "pm_card_visa"}
            paid = await until_not_404(lambda: buyer.post("/api/payments", json=body))
            expect(paid, 201, "pay")

        result = await self._load("c. purchase (sell, order, pay)", op, sink)
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
        self, seller: httpx.AsyncClient, buyer: httpx.AsyncClient, number: int, sink: list[float]
    ) -> str:
        body = {"title": f"bench {number}", "price": "19.99"}
        created = expect(await seller.post("/api/tickets", json=body), 201, "sell")
        sold_at = time.perf_counter()
        ticket = {"ticketId": created.json()["id"]}
        order = await until_not_404(lambda: buyer.post("/api/orders", json=ticket))
        expect(order, 201, "order")
        sink.append(time.perf_counter() - sold_at)
        order_id: str = order.json()["id"]
        return order_id

    async def _load(
        self, name: str, op: Callable[[int], Awaitable[None]], sink: list[float] | None = None
    ) -> Result:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        # Only the samples of the measured part count (the warm-up comes first).
        on_measure = sink.clear if sink is not None else None
        result = await closed_loop(
            name, op, self.concurrency, self.duration, self.warmup, on_measure
        )
        if sink is not None:
            self.propagation_loaded = list(sink)
        return result


async def run_all(run: Run, bare_url: str) -> None:
    await run.bare(bare_url)
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
    a, b, c, d = (run.results.get(k) for k in "abcd")
    if a and b and a.rate:
        lines.append(f"- b/a (ticket read vs the ceiling): {b.rate / a.rate:.2f}")
    if c and d and d.rate:
        lines.append(f"- c/d (purchase flow vs bare localstripe): {c.rate / d.rate:.2f}")
    for label, samples in (
        ("idle stack, one ticket at a time", run.propagation_idle),
        ("during scenario c", run.propagation_loaded),
    ):
        if samples:
            lines.append(
                f"- event propagation ({label}, {len(samples)} tickets): "
                f"p50 {ms(percentile(samples, 50))} ms, p99 {ms(percentile(samples, 99))} ms"
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
    stack: Stack | None = None
    if args.url:
        gateway_url, localstripe_url = args.url.rstrip("/"), args.localstripe_url.rstrip("/")
        header.append(f"- stack: running at {gateway_url}, localstripe at {localstripe_url}")
    else:
        print("starting the stack as make dev does ...", file=sys.stderr, flush=True)
        stack = Stack()
        stack.start()
    failed = True
    try:
        if stack is not None:
            stack.wait_ready()
            gateway_url = stack.gateway_url
            assert stack.localstripe_url is not None
            localstripe_url = stack.localstripe_url
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
        )
        with bare_gateway() as bare_url:
            asyncio.run(run_all(run, bare_url))
        failed = False
    finally:
        if stack is not None:
            stack.stop(keep_log=failed)
            if failed:
                print(f"devstack log: {stack.log_path}", file=sys.stderr)
    text = report(run, header)
    print(text)
    if args.write:
        write_section(args.write, text)
        print(f"written to {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
