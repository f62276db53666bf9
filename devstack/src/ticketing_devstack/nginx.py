"""The gateway's nginx config: `infra/gateway/nginx.conf.j2` filled from the route table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

from ticketing_common.config import DEFAULT_MAX_BODY_BYTES
from ticketing_common.errors import PayloadTooLargeError
from ticketing_devstack.routes import Route, repo_root

TEMPLATE = Path("infra") / "gateway" / "nginx.conf.j2"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

NOT_FOUND = json.dumps({"errors": [{"message": "Not Found"}]})
UNAVAILABLE = json.dumps({"errors": [{"message": "Service unavailable"}]})
TOO_LARGE = json.dumps({"errors": [{"message": PayloadTooLargeError.message}]})
# The largest body the gateway passes on: the services' own default MAX_BODY_BYTES, so a
# larger one never reaches them (the ingress says the same, infra/k8s/ingress-srv.yaml).
MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES


def upstream_name(service: str) -> str:
    return "svc_" + service.replace("-", "_")


def render_nginx_conf(
    *,
    routes: Sequence[Route],
    upstreams: Mapping[str, int | Sequence[int]],
    listen_port: int,
    run_dir: Path,
    listen_host: str = "127.0.0.1",
    as_root: bool | None = None,
    template: Path | None = None,
) -> str:
    """nginx.conf for a foreground gateway whose state lives in `run_dir`.

    Routes keep the table's order; a route whose service has no entry in `upstreams`
    (service -> its local port, or the ports of its replicas) is left out. Paths reach the
    service unchanged. With several ports nginx balances round-robin and passes a request
    on to the next replica when one refuses the connection (its default
    `proxy_next_upstream error timeout`; a POST only when it was not sent yet).
    """
    template = template or repo_root() / TEMPLATE
    routed = []
    for route in routes:
        if route.service not in upstreams:
            continue
        if any(ch in route.path for ch in '"\\;{} \t\n'):
            raise ValueError(f"route path {route.path!r} cannot be written into nginx.conf")
        routed.append({"path": route.path, "upstream": upstream_name(route.service)})
    env = jinja2.Environment(
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    return env.from_string(template.read_text()).render(
        routes=routed,
        upstreams=[
            {"name": upstream_name(service), "ports": _ports(port)}
            for service, port in upstreams.items()
        ],
        listen=f"{listen_host}:{listen_port}",
        run_dir=run_dir,
        as_root=os.geteuid() == 0 if as_root is None else as_root,
        temp_dirs=TEMP_DIRS,
        not_found=NOT_FOUND,
        unavailable=UNAVAILABLE,
        too_large=TOO_LARGE,
        max_body_bytes=MAX_BODY_BYTES,
    )


def _ports(ports: int | Sequence[int]) -> list[int]:
    return [ports] if isinstance(ports, int) else list(ports)


def write_nginx_conf(
    run_dir: Path,
    *,
    routes: Sequence[Route],
    upstreams: Mapping[str, int | Sequence[int]],
    listen_port: int,
    template: Path | None = None,
) -> Path:
    """`run_dir/nginx.conf` (see `render_nginx_conf`) beside the temporary folders it
    names; the config's path, for `nginx_command`."""
    for name in TEMP_DIRS:
        (run_dir / name).mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            routes=routes,
            upstreams=upstreams,
            listen_port=listen_port,
            run_dir=run_dir,
            template=template,
        )
    )
    return conf


def nginx_command(nginx: str, run_dir: Path, conf: Path, *, test: bool = False) -> list[str]:
    argv = [nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(conf)]
    return [*argv, "-q", "-t"] if test else argv
