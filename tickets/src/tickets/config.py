from functools import lru_cache

from pydantic import Field

from ticketing_common.config import EventSettings, load_settings

SERVICE = "tickets"


class Settings(EventSettings):
    JWT_KEY: str
    MONGO_URI: str
    # How many cancelled orders a ticket remembers (the newest), so their late
    # `order:created` cannot take it; bounded so the document stays small.
    CANCELLED_ORDERS_KEPT: int = Field(default=100, gt=0)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
