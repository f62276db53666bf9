from functools import lru_cache

from ticketing_common.config import ServiceSettings, load_settings


class Settings(ServiceSettings):
    JWT_KEY: str
    MONGO_URI: str
    COOKIE_SECURE: bool = True
    SESSION_TTL_SECONDS: int = 7 * 24 * 3600
    # argon2id cost; the defaults are argon2-cffi's (about 190 ms a hash on 2 cores).
    ARGON2_TIME_COST: int = 3
    ARGON2_MEMORY_KIB: int = 65536


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, "auth")
