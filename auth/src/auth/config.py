from functools import lru_cache

from pydantic import Field

from ticketing_common.config import ServiceSettings, load_settings


class Settings(ServiceSettings):
    JWT_KEY: str
    MONGO_URI: str
    COOKIE_SECURE: bool = True
    SESSION_TTL_SECONDS: int = 7 * 24 * 3600
    # argon2id cost; the defaults are argon2-cffi's (about 190 ms a hash on 2 cores).
    ARGON2_TIME_COST: int = 3
    ARGON2_MEMORY_KIB: int = 65536
    # Hashes at once (each holds ARGON2_MEMORY_KIB) and how many more may wait; beyond, 503.
    # The pod's memory limit is sized to them (infra/k8s/auth-depl.yaml).
    ARGON2_MAX_CONCURRENT: int = Field(2, gt=0)
    ARGON2_MAX_QUEUED: int = Field(16, ge=0)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, "auth")
