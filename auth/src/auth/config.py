from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

from ticketing_common.config import ServiceSettings, load_settings

Network = IPv4Network | IPv6Network


def _networks(value: Any) -> Any:
    """`10.0.0.0/8, 127.0.0.1`: comma-separated addresses or CIDR blocks."""
    if isinstance(value, str):
        return tuple(ip_network(part.strip()) for part in value.split(",") if part.strip())
    return value


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
    # The abuse limits' counters (docs/SPEC.md §2), shared by every replica.
    REDIS_URL: str
    # Each counter's window: it starts at the first counted attempt and is then fixed.
    RATE_LIMIT_WINDOW_SECONDS: int = Field(900, gt=0)
    # Failed sign-ins per email and per client address in a window; beyond, 429.
    SIGNIN_FAILURES_PER_EMAIL: int = Field(10, gt=0)
    SIGNIN_FAILURES_PER_ADDRESS: int = Field(100, gt=0)
    # Sign-up attempts (successful or not) per email and per client address in a window.
    SIGNUPS_PER_EMAIL: int = Field(10, gt=0)
    SIGNUPS_PER_ADDRESS: int = Field(30, gt=0)
    # Peers whose X-Forwarded-For is believed (the gateway, the ingress controller): the
    # client is then the last address in it that is not one of these.
    TRUSTED_PROXIES: Annotated[tuple[Network, ...], NoDecode, BeforeValidator(_networks)] = ()


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, "auth")
