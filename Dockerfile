# syntax=docker/dockerfile:1
# Every service's image, built from the repository root for one SERVICE (auth, tickets,
# orders, payments, expiration or client). Two targets:
#   runtime (the default, last stage): the locked dependencies and the package, nothing else;
#     docker build --build-arg SERVICE=auth .
#   dev (what skaffold dev builds): the package installed editable from the sources that
#     skaffold syncs into the running container, restarted on each edit;
#     docker build --build-arg SERVICE=auth --target dev .

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim-bookworm AS base
ARG SERVICE
# Kept in the image's environment: the CMD reads it.
ENV SERVICE=${SERVICE} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/app/.venv/bin:$PATH
# A fixed numeric id, so Kubernetes can check runAsNonRoot against the image.
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<service>" >&2; exit 1; } \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin app
WORKDIR /app

FROM base AS deps
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# Step 1: third-party dependencies only, from the lock (no dev group). This layer is
# rebuilt only when uv.lock or one of these pyproject files changes, not on a code edit.
COPY pyproject.toml uv.lock ./
COPY common/pyproject.toml common/pyproject.toml
COPY ${SERVICE}/pyproject.toml ${SERVICE}/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ${SERVICE} --no-install-workspace

FROM deps AS dev
# skaffold copies changed files in as the container's user, so that user owns the tree.
COPY --chown=10001:10001 common/src common/src
COPY --chown=10001:10001 ${SERVICE}/src ${SERVICE}/src
# Step 2 (dev): the workspace packages, editable, so synced sources are what runs; plus
# watchfiles at the version uv.lock pins, which `arq --watch` needs and the worker does not
# depend on (uvicorn[standard] already brings it to the HTTP services).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ${SERVICE} \
 && uv export --frozen --all-packages --no-dev --no-emit-workspace --no-hashes \
      --output-file /tmp/locked.txt \
 && uv pip install --python /app/.venv/bin/python --constraint /tmp/locked.txt watchfiles \
 && rm /tmp/locked.txt
USER 10001:10001
# Shell form, so $SERVICE expands when the container starts; exec, so the server (not the
# shell) is PID 1 and gets the pod's SIGTERM. expiration is the arq worker (no port).
CMD if [ "$SERVICE" = expiration ]; then exec arq --watch "/app/$SERVICE/src" "$SERVICE.worker.WorkerSettings"; fi; \
    exec uvicorn "$SERVICE.app:create_app" --factory --host 0.0.0.0 --port 3000 \
      --timeout-keep-alive 75 --reload --reload-dir "/app/$SERVICE/src" --reload-dir /app/common/src

FROM deps AS build
COPY common/src common/src
COPY ${SERVICE}/src ${SERVICE}/src
# Step 2: the package and the shared package, installed as wheels (no sources needed later).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ${SERVICE} --no-editable

FROM base AS runtime
COPY --from=build /app/.venv /app/.venv
USER 10001:10001
# Idle connections outlive ingress-nginx's 60 s upstream keep-alive, so the controller
# closes them first and never sends a request on one uvicorn is closing.
CMD if [ "$SERVICE" = expiration ]; then exec arq "$SERVICE.worker.WorkerSettings"; fi; \
    exec uvicorn "$SERVICE.app:create_app" --factory --host 0.0.0.0 --port 3000 \
      --timeout-keep-alive 75
