"""The gateway's route table (`infra/gateway/routes.toml`) and which services are built."""

from __future__ import annotations

import ast
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROUTES_FILE = Path("infra") / "gateway" / "routes.toml"


class RouteTableError(ValueError):
    """The route table is missing or malformed."""


@dataclass(frozen=True)
class Route:
    """One gateway route: requests whose path matches `path` (a regex) go to `service`."""

    path: str
    service: str


def repo_root() -> Path:
    """The checkout this package runs from (`TICKETING_ROOT` overrides)."""
    if os.environ.get("TICKETING_ROOT"):
        return Path(os.environ["TICKETING_ROOT"]).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / ROUTES_FILE).is_file():
                return folder
    raise RouteTableError(f"no {ROUTES_FILE} above {Path(__file__).parent} or {Path.cwd()}")


def load_routes(path: Path | None = None) -> list[Route]:
    """The route table in ingress order (the first match wins)."""
    path = path or repo_root() / ROUTES_FILE
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RouteTableError(f"cannot read route table {path}: {exc}") from exc
    entries = table.get("route")
    if not isinstance(entries, list) or not entries:
        raise RouteTableError(f"{path}: expected a non-empty list of [[route]] tables")
    routes: list[Route] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) != {"path", "service"}:
            raise RouteTableError(f"{path}: route {number} needs exactly `path` and `service`")
        route_path, service = entry["path"], entry["service"]
        if not isinstance(route_path, str) or not route_path.startswith("/"):
            raise RouteTableError(f"{path}: route {number}: path must be a string starting '/'")
        if not isinstance(service, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", service):
            raise RouteTableError(f"{path}: route {number}: service must be a lowercase name")
        try:
            re.compile(route_path)
        except re.error as exc:
            raise RouteTableError(f"{path}: route {number}: bad regex {route_path!r}") from exc
        if any(r.path == route_path for r in routes):
            raise RouteTableError(f"{path}: route {number}: duplicate path {route_path!r}")
        routes.append(Route(route_path, service))
    return routes


def route_for(routes: list[Route], request_path: str) -> Route | None:
    """The route a request path takes: the first whose regex matches from the start."""
    for route in routes:
        if re.match(route.path, request_path, flags=re.IGNORECASE):
            return route
    return None


def service_module(root: Path, service: str, module: str = "app") -> Path:
    return root / service / "src" / service / f"{module}.py"


def is_built(root: Path, service: str, module: str = "app", name: str = "create_app") -> bool:
    """Whether `<service>/src/<service>/<module>.py` exists and defines `name` at its top
    level: by `def` or `class`, by assignment (`create_app = app_factory(...)`), or through
    a module `__getattr__` that answers it by name (the worker's `WorkerSettings`)."""
    try:
        tree = ast.parse(service_module(root, service, module).read_text())
    except (OSError, SyntaxError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
            if node.name == "__getattr__" and any(
                isinstance(c, ast.Constant) and c.value == name for c in ast.walk(node)
            ):
                return True
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False
