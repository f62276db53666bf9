# Ticketing. On a fresh Debian machine (Python 3.11+, apt, PyPI) two commands are enough:
#   make dev    the whole system in the foreground, behind the gateway at http://127.0.0.1:8080
#   make test   install, lint, then every test
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
BIN := .venv/bin
# The uv that creates .venv: PATH's, else the one `bootstrap` puts into $(PYTHON)'s user
# site, always as an absolute path (a bare `uv` or `python3 -m uv` would resolve against
# whatever PATH a recipe or a test runs with). Once .venv exists, everything uses the uv
# inside it (a dev dependency), exported as UV to every command below.
SYSTEM_UV = $(or $(shell command -v uv 2>/dev/null),$(shell $(PYTHON) -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null))
export UV := $(abspath $(BIN))/uv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

# Every top-level folder holding tests (one per workspace member, plus infra/).
TEST_DIRS = $(wildcard */tests)

.PHONY: help bootstrap install dev lint test bench

help:
	@echo "make dev      run every service, NATS, Redis, localstripe and the gateway (Ctrl-C stops all)"
	@echo "make test     install, lint, then run every test"
	@echo "make lint     ruff check, ruff format --check, mypy over every package"
	@echo "make bench    load and latency figures of the running system (writes docs/benchmarks.md)"
	@echo "make install  install what is missing (uv, the Python workspace, redis-server, nginx, chromium)"

# uv for the first sync, only when neither PATH nor the user site has one. A separate
# target: make expands a recipe before running it, so SYSTEM_UV is read after this ran.
bootstrap:
	@[ -x $(UV) ] || command -v uv >/dev/null 2>&1 || $(PYTHON) -c 'import uv' 2>/dev/null || { \
	  $(PYTHON) -m pip --version >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(APT_INSTALL) python3-pip; }; \
	  $(PYTHON) -m pip install --user --quiet uv 2>/dev/null \
	    || $(PYTHON) -m pip install --user --quiet --break-system-packages uv; }

# Idempotent: each step does nothing when its tool is already there.
install: bootstrap
	@if [ -x $(UV) ]; then $(UV) sync --all-packages --locked --quiet; \
	  else uv=$(SYSTEM_UV); [ -n "$$uv" ] || { echo "no uv found after bootstrap"; exit 1; }; \
	  $$uv sync --all-packages --locked --quiet; fi
	@missing=""; \
	  { [ -x /usr/bin/redis-server ] || command -v redis-server; } >/dev/null || missing="$$missing redis-server"; \
	  { [ -x /usr/sbin/nginx ] || command -v nginx; } >/dev/null || missing="$$missing nginx"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing with apt-get:$$missing"; \
	    $(SUDO) apt-get update -q; \
	    nginx=nginx-light; apt-cache show nginx-light >/dev/null 2>&1 || nginx=nginx; \
	    $(APT_INSTALL) $${missing/nginx/$$nginx}; \
	  fi

# REPLICAS=N: N processes of every HTTP service behind the gateway and N expiration workers.
REPLICAS ?= 1
dev: install
	REPLICAS=$(REPLICAS) $(BIN)/python -m ticketing_devstack

# Tests are type-checked too, but fixtures and test methods may go unannotated.
MYPY_TESTS := --allow-untyped-defs --allow-incomplete-defs

# Every check runs, and lint fails at the end if any did. mypy checks every member's src/
# in one run (their packages are distinct), each tests/ folder on its own (test modules
# such as conftest.py repeat across members), and any other folder with Python files as a
# whole.
SRC_DIRS = $(wildcard */src)
lint: install
	@failed=""; \
	echo "ruff check ."; $(BIN)/ruff check . || failed="$$failed ruff-check"; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || failed="$$failed ruff-format"; \
	echo "mypy $(SRC_DIRS)"; $(BIN)/mypy $(SRC_DIRS) || failed="$$failed mypy:src"; \
	has() { [ -n "$$(find $$1 -name '*.py' -print -quit 2>/dev/null)" ]; }; \
	for dir in */; do \
	  dir=$${dir%/}; \
	  if has $$dir/tests; then echo "mypy $$dir/tests"; $(BIN)/mypy $(MYPY_TESTS) $$dir/tests || failed="$$failed mypy:$$dir/tests"; fi; \
	  if ! has $$dir/src && ! has $$dir/tests && has $$dir; then echo "mypy $$dir"; $(BIN)/mypy $$dir || failed="$$failed mypy:$$dir"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "lint failed:$$failed"; exit 1; fi

# NATS and Redis for the tests are started by the pytest fixtures on free ports
# (ticketing_testing.fixtures) unless NATS_URL / REDIS_URL are set.
# Two workers, each taking whole test files (module-scoped stacks and browsers stay in
# one process): most tests wait on servers and events rather than compute.
test: install lint
	$(BIN)/pytest -q -n 2 --dist loadfile $(TEST_DIRS)

# A benchmark, not a test: starts the stack as `make dev` does (or pass BENCH_ARGS="--url
# http://127.0.0.1:8080" for a running one), loads it, and writes the figures into
# docs/benchmarks.md. BENCH_ARGS="--concurrency 16 --duration 10" are the defaults.
# REPLICAS=N runs the stack as `make dev REPLICAS=N` does (its own section of the page).
bench: install
	$(BIN)/python benchmarks/bench_stack.py --replicas $(REPLICAS) --write docs/benchmarks.md $(BENCH_ARGS)
