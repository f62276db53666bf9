"""Fuzzing the HTTP APIs through the gateway with schemathesis (from the root dev group).

`Fuzzer` sends each generated case through the gateway with a session cookie and records
what breaks the contract (docs/SPEC.md §1) instead of raising, so one run reports every
finding: a 5xx, a 422, a 4xx whose body is not exactly `{"errors": [{"message", "field"?}]}`,
and a refused write after which the system's state (as `state` reads it) is not what it was.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.schemas import OpenApiSchema

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_ENTRY_KEYS = frozenset({"message", "field"})


def error_body_problem(content: bytes) -> str | None:
    """What is wrong with a 4xx body, or None when it is exactly the standard error body."""
    try:
        body = json.loads(content)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or set(body) != {"errors"}:
        return "body is not an object with exactly the key `errors`"
    errors = body["errors"]
    if not isinstance(errors, list) or not errors:
        return "`errors` is not a non-empty list"
    for entry in errors:
        if not isinstance(entry, dict) or "message" not in entry:
            return f"error entry without `message`: {entry!r}"
        if not set(entry) <= ERROR_ENTRY_KEYS:
            return f"error entry with other keys than message and field: {entry!r}"
        if not all(isinstance(value, str) and value for value in entry.values()):
            return f"error entry whose message or field is not a non-empty string: {entry!r}"
    return None


def answer_problems(response: Response) -> list[str]:
    """What breaks the contract in one answer, whatever the request."""
    status = response.status_code
    if status >= 500:
        return [f"{status} (a server fault)"]
    if status == 422:
        return ["422 (FastAPI's validation error surfaced)"]
    if 400 <= status < 500 and (problem := error_body_problem(response.content)):
        return [f"{status} with a non-standard body: {problem}"]
    return []


def every_page(http: httpx.Client, path: str) -> list[Any]:
    """A paged list (SPEC §3 Paging) followed through its `Link` headers."""
    items: list[Any] = []
    url: str | None = f"{path}?limit=200"
    while url is not None:
        response = http.get(url)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        items.extend(response.json())
        url = response.links.get("next", {}).get("url")
    return items


def settled(read: Callable[[], object], interval: float = 0.2, timeout: float = 5.0) -> object:
    """`read()` once two reads `interval` apart agree (what an event in flight changes has
    landed), or its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = read()
        if now == last:
            return now
        last = now
    return last


@dataclass
class Fuzzer:
    """Sends cases through the gateway with `cookies`, collecting every finding."""

    gateway_url: str
    cookies: dict[str, str]
    state: Callable[[], object]
    # Paths whose refused writes are not state-checked (the Stripe webhook: signed by Stripe).
    unchecked_paths: frozenset[str] = frozenset()
    # Operations ("PUT /api/tickets/{ticket_id}") whose success changes the state later too,
    # through events: the next state-checked write first waits for the state to settle.
    eventful: frozenset[str] = frozenset()
    findings: list[str] = field(default_factory=list)
    # How often each operation answered each status: `answers["POST /api/tickets"][201]`.
    answers: dict[str, Counter[int]] = field(default_factory=dict)
    # An eventful write succeeded since the last read of the state: its events may be in flight.
    _dirty: bool = True
    # One connection pool for every case (a new session per request costs more than the request).
    _http: requests.Session = field(default_factory=requests.Session)

    def send(self, case: Case[Any]) -> None:
        label = f"{case.method.upper()} {case.path}"
        write = case.method.upper() in WRITES
        checked = write and case.path not in self.unchecked_paths
        before = None
        if checked:
            before = settled(self.state) if self._dirty else self.state()
            self._dirty = False
        try:
            response = case.call(
                base_url=self.gateway_url, session=self._http, cookies=self.cookies, timeout=30
            )
        except Exception as exc:
            self._record(case, [f"no answer: {exc!r}"])
            return
        finally:
            # Only `cookies` signs a request in: not a cookie a sign-up answered with.
            self._http.cookies.clear()
        self.answers.setdefault(label, Counter())[response.status_code] += 1
        problems = answer_problems(response)
        if checked and response.status_code >= 400 and (after := self.state()) != before:
            problems.append(
                f"{response.status_code} but the state changed: {before!r} -> {after!r}"
            )
        if label in self.eventful and response.status_code < 400:
            self._dirty = True
        if problems:
            self._record(case, problems, response)

    def _record(
        self, case: Case[Any], problems: list[str], response: Response | None = None
    ) -> None:
        answer = "" if response is None else f"\n    answer: {response.content[:300]!r}"
        curl = case.as_curl_command(base_url=self.gateway_url)
        self.findings.append(
            f"{case.method.upper()} {case.formatted_path}: {'; '.join(problems)}"
            f"\n    {curl}{answer}"
        )

    def fuzz(
        self,
        schema: OpenApiSchema,
        *,
        max_examples: int,
        modes: Iterable[GenerationMode] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
        path_parameters: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """Every operation of `schema`, `max_examples` cases per mode in `modes`,
        derandomized (the same cases every run). A path parameter named in
        `path_parameters` is, in some of the cases, one of the given (real) values."""
        known = path_parameters or {}
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                self.findings.append(f"an operation schemathesis cannot read: {result.err()}")
                continue
            operation = result.ok()
            for mode in modes:
                strategies = [operation.as_strategy(generation_mode=mode)]
                for name in _path_parameter_names(operation.path):
                    for value in known.get(name, ()):
                        fixed = operation.as_strategy(
                            generation_mode=mode, path_parameters={name: value}
                        )
                        strategies.append(fixed)
                self._run(st.one_of(strategies), max_examples)

    def _run(self, cases: st.SearchStrategy[Case[Any]], max_examples: int) -> None:
        @settings(
            max_examples=max_examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def each(case: Case[Any]) -> None:
            self.send(case)

        # Negative cases of an operation without parameters or body: there are none.
        with contextlib.suppress(Unsatisfiable):
            each()


def _path_parameter_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
