import pytest

from tickets.config import Settings, get_settings

REQUIRED = ("JWT_KEY", "MONGO_URI", "NATS_URL")


class TestSettings:
    def test_missing_variables_refuse_to_start_naming_each(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for name in REQUIRED:
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
        with pytest.raises(SystemExit) as exited:
            get_settings()
        assert exited.value.code == 2
        message = capsys.readouterr().err
        assert message.startswith("tickets: refusing to start")
        for name in REQUIRED:
            assert f"missing required environment variable {name}" in message

    def test_settings_are_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JWT_KEY", "k" * 40)
        monkeypatch.setenv("MONGO_URI", "memory://")
        monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4222")
        monkeypatch.setenv("PUBLISH_TIMEOUT_SECONDS", "1.5")
        get_settings.cache_clear()
        try:
            settings = get_settings()
        finally:
            get_settings.cache_clear()
        assert isinstance(settings, Settings)
        assert (settings.MONGO_URI, settings.NATS_URL) == ("memory://", "nats://127.0.0.1:4222")
        assert settings.PUBLISH_TIMEOUT_SECONDS == 1.5
        assert settings.EVENT_GIVE_UP_SECONDS == 600.0
