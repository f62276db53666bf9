"""A weak session key refuses to start the service unless its database is in memory."""

import pytest

from auth.app import create_app
from auth.config import get_settings
from ticketing_common.config import DEV_JWT_KEY
from ticketing_testing import TEST_JWT_KEY

REAL_DB = "mongodb://auth-mongo-srv:27017/auth"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch):
    def set_env(jwt_key: str, mongo_uri: str) -> None:
        monkeypatch.setenv("JWT_KEY", jwt_key)
        monkeypatch.setenv("MONGO_URI", mongo_uri)
        monkeypatch.setenv("REDIS_URL", "redis://auth-redis:6379/1")
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("k" * 31, "JWT_KEY: must be at least 32 bytes unless MONGO_URI=memory://"),
        ("é" * 15, "JWT_KEY: must be at least 32 bytes unless MONGO_URI=memory://"),
        (DEV_JWT_KEY, "JWT_KEY: the public dev-only key runs only with MONGO_URI=memory://"),
    ],
    ids=["31-bytes", "30-bytes-of-15-characters", "dev-key"],
)
def test_weak_key_with_a_real_database_refuses_to_start_in_one_line(
    environment, capsys, key, reason
):
    environment(key, REAL_DB)

    with pytest.raises(SystemExit) as exited:
        create_app()

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"auth: refusing to start: invalid environment variable {reason}\n"


@pytest.mark.parametrize("key", ["k" * 32, TEST_JWT_KEY])
def test_key_of_32_bytes_or_more_starts_with_a_real_database(environment, key):
    environment(key, REAL_DB)

    assert key == get_settings().JWT_KEY


@pytest.mark.parametrize("key", ["k", DEV_JWT_KEY])
def test_in_memory_database_accepts_any_key_for_dev_and_tests(environment, key):
    environment(key, "memory://")

    assert key == get_settings().JWT_KEY
