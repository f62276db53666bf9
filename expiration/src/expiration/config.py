from functools import lru_cache

from ticketing_common.config import EventSettings, load_settings

SERVICE = "expiration"


class Settings(EventSettings):
    REDIS_URL: str


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
