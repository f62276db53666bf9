"""The ceiling of `bench_stack.py`: one bare FastAPI JSON endpoint, run like a service.

`uvicorn bench_bare_app:app --app-dir benchmarks --host 127.0.0.1 --port P` (one worker,
uvicorn's defaults, as `make dev` runs each service).
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="bench-bare")


@app.get("/api/bare")
async def show_bare() -> dict[str, object]:
    """A small JSON document, about the size of a ticket."""
    return {"id": "0" * 24, "title": "bare", "price": 10, "version": 0}
