"""The route table and the nginx config generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ticketing_devstack.nginx import render_nginx_conf
from ticketing_devstack.routes import (
    Route,
    RouteTableError,
    load_routes,
    repo_root,
    route_for,
)

SPEC_ROUTES = [
    Route("/api/payments/?(.*)", "payments"),
    Route("/api/users/?(.*)", "auth"),
    Route("/api/tickets/?(.*)", "tickets"),
    Route("/api/orders/?(.*)", "orders"),
    Route("/?(.*)", "client"),
]


def locations(conf: str) -> list[tuple[str, str]]:
    """(regex, upstream) of each regex location, in the order nginx tries them."""
    return re.findall(r'location ~\* "\^(.+?)" \{\s*proxy_pass http://svc_(\w+);', conf)


def render(upstreams: dict[str, int], routes: list[Route] | None = None) -> str:
    return render_nginx_conf(
        routes=routes or SPEC_ROUTES,
        upstreams=upstreams,
        listen_port=18080,
        run_dir=Path("/tmp/run"),
        as_root=False,
    )


class TestRouteTable:
    def test_repo_table_is_the_ingress_of_spec_section_7_in_order(self) -> None:
        assert load_routes() == SPEC_ROUTES

    def test_loader_reads_the_table_under_the_repo_root(self) -> None:
        assert (repo_root() / "infra" / "gateway" / "routes.toml").is_file()

    @pytest.mark.parametrize(
        ("path", "service"),
        [
            ("/api/users/signup", "auth"),
            ("/api/users", "auth"),
            ("/api/payments", "payments"),
            ("/api/tickets/6b09fb4c3294de09e4be3bf0", "tickets"),
            ("/api/orders/", "orders"),
            ("/", "client"),
            ("/tickets/new", "client"),
            ("/auth/signin", "client"),
        ],
    )
    def test_first_matching_route_wins(self, path: str, service: str) -> None:
        route = route_for(load_routes(), path)
        assert route is not None and route.service == service

    def test_missing_service_is_rejected(self, tmp_path: Path) -> None:
        table = tmp_path / "routes.toml"
        table.write_text('[[route]]\npath = "/api/x/?(.*)"\n')
        with pytest.raises(RouteTableError, match="exactly `path` and `service`"):
            load_routes(table)

    def test_bad_regex_is_rejected(self, tmp_path: Path) -> None:
        table = tmp_path / "routes.toml"
        table.write_text('[[route]]\npath = "/api/(x"\nservice = "x"\n')
        with pytest.raises(RouteTableError, match="bad regex"):
            load_routes(table)

    def test_duplicate_path_is_rejected(self, tmp_path: Path) -> None:
        table = tmp_path / "routes.toml"
        entry = '[[route]]\npath = "/a"\nservice = "x"\n'
        table.write_text(entry + entry)
        with pytest.raises(RouteTableError, match="duplicate"):
            load_routes(table)

    def test_empty_table_is_rejected(self, tmp_path: Path) -> None:
        table = tmp_path / "routes.toml"
        table.write_text("")
        with pytest.raises(RouteTableError, match="non-empty"):
            load_routes(table)


class TestNginxConf:
    def test_every_built_service_is_routed_in_table_order(self) -> None:
        conf = render(
            {"client": 5005, "orders": 5004, "tickets": 5003, "auth": 5002, "payments": 5001}
        )
        assert locations(conf) == [(route.path, route.service) for route in SPEC_ROUTES]

    def test_route_of_an_unbuilt_service_is_absent(self) -> None:
        conf = render({"auth": 5002, "client": 5005})
        assert locations(conf) == [("/api/users/?(.*)", "auth"), ("/?(.*)", "client")]
        assert "payments" not in conf and "tickets" not in conf and "orders" not in conf

    def test_upstreams_point_at_the_local_ports(self) -> None:
        conf = render({"auth": 5002})
        assert re.search(r"upstream svc_auth \{\s*server 127\.0\.0\.1:5002;", conf)
        assert "listen 127.0.0.1:18080;" in conf

    def test_host_and_forwarded_headers_are_passed(self) -> None:
        conf = render({"auth": 5002})
        for header in (
            "proxy_set_header Host $host;",
            "proxy_set_header X-Forwarded-For $remote_addr;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header X-Forwarded-Host $host;",
        ):
            assert header in conf

    def test_state_lives_in_the_run_dir_and_runs_in_the_foreground(self) -> None:
        conf = render({"auth": 5002})
        assert "daemon off;" in conf
        assert "pid /tmp/run/nginx.pid;" in conf
        assert "proxy_temp_path /tmp/run/proxy;" in conf
        assert "user " not in conf

    def test_root_runner_keeps_its_user_for_the_workers(self) -> None:
        conf = render_nginx_conf(
            routes=SPEC_ROUTES,
            upstreams={"auth": 1},
            listen_port=1,
            run_dir=Path("/r"),
            as_root=True,
        )
        assert conf.startswith("# Generated") and "\nuser root;\n" in conf

    def test_path_that_would_break_the_config_is_refused(self) -> None:
        with pytest.raises(ValueError, match="cannot be written"):
            render({"x": 1}, [Route('/a" { return 200; }', "x")])
