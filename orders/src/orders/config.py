from functools import lru_cache

from pydantic import Field

from ticketing_common.config import EventSettings, load_settings

SERVICE = "orders"


class Settings(EventSettings):
    JWT_KEY: str
    MONGO_URI: str
    # How long a new order holds its ticket before the expiration service cancels it.
    EXPIRATION_WINDOW_SECONDS: int = Field(default=900, gt=0)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
