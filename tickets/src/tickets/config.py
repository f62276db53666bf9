from functools import lru_cache

from ticketing_common.config import EventSettings, load_settings

SERVICE = "tickets"


class Settings(EventSettings):
    JWT_KEY: str
    MONGO_URI: str


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
