from functools import lru_cache

from pydantic import Field

from ticketing_common.config import EventSettings, load_settings

SERVICE = "orders"


class Settings(EventSettings):
    JWT_KEY: str
    MONGO_URI: str
    # How long a new order holds its ticket before the expiration service cancels it.
    EXPIRATION_WINDOW_SECONDS: int = Field(default=900, gt=0)
    # The expiration job is the normal path; a `created` order still open this long past
    # its `expiresAt` lost its job (Redis, arq) and is cancelled by orders' own sweep,
    # which looks every EXPIRATION_SWEEP_INTERVAL_SECONDS.
    EXPIRATION_GRACE_SECONDS: float = Field(default=60.0, ge=0)
    EXPIRATION_SWEEP_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    # Open (`created`, `awaiting:payment`) orders one user may hold at once, so one
    # account cannot reserve the whole catalogue.
    MAX_OPEN_ORDERS_PER_USER: int = Field(default=10, gt=0)
    # How long a request for a record this service replicates (orders: a ticket; payments:
    # an order) waits for it to arrive before answering 404: its event is usually a few
    # milliseconds behind the answer that announced it.
    REPLICA_WAIT_SECONDS: float = Field(default=0.25, ge=0, le=5)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
