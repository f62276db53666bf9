import socket
from functools import lru_cache

from pydantic import Field

from ticketing_common.config import EventSettings, load_settings

SERVICE = "expiration"


class Settings(EventSettings):
    REDIS_URL: str
    # How long Redis keeps a finished job's result (its key expires then). While it is
    # kept, a repeated `order:created` of the order schedules nothing; after, one would
    # run a job at once whose `expiration:complete` orders ignores (the order is no longer
    # `created`), so this bounds memory without changing any order.
    KEEP_RESULT_SECONDS: float = Field(default=3600.0, gt=0)
    # The worker has no HTTP app: with a port, it serves its Prometheus metrics there (any
    # path, `/metrics` included) from a thread; none when unset.
    METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)
    # This worker's name (a pod's is its host name), which names its health key, so that
    # `arq --check` in its pod tells whether this worker runs, not whether any does.
    WORKER_NAME: str = Field(default_factory=socket.gethostname, min_length=1)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
