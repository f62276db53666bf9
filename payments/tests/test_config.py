import pytest
from pydantic import ValidationError

from payments.config import Settings, get_settings
from ticketing_testing import TEST_JWT_KEY

REQUIRED = {
    "JWT_KEY": TEST_JWT_KEY,
    "MONGO_URI": "memory://",
    "NATS_URL": "nats://127.0.0.1:4222",
    "STRIPE_KEY": "sk_test_123",
}


class TestSettings:
    def test_required_variables_give_settings_with_stripe_itself_as_default(self) -> None:
        settings = Settings(**REQUIRED)  # type: ignore[arg-type]
        assert settings.STRIPE_API_BASE is None

    def test_api_base_loses_its_trailing_slash_and_empty_means_unset(self) -> None:
        based = Settings(**REQUIRED, STRIPE_API_BASE="http://127.0.0.1:8420/")  # type: ignore[arg-type]
        empty = Settings(**REQUIRED, STRIPE_API_BASE=" ")  # type: ignore[arg-type]
        assert based.STRIPE_API_BASE == "http://127.0.0.1:8420"
        assert empty.STRIPE_API_BASE is None

    @pytest.mark.parametrize("key", ["pk_test_123", "rk_test_123", "", "test"])
    def test_stripe_key_that_is_not_a_secret_key_is_refused(self, key: str) -> None:
        with pytest.raises(ValidationError, match="STRIPE_KEY"):
            Settings(**{**REQUIRED, "STRIPE_KEY": key})  # type: ignore[arg-type]

    def test_claim_timeout_shorter_than_an_attempt_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="PAYMENT_CLAIM_TIMEOUT_SECONDS"):
            Settings(
                **REQUIRED,  # type: ignore[arg-type]
                STRIPE_TIMEOUT_SECONDS=20,
                PAYMENT_CLAIM_TIMEOUT_SECONDS=30,
            )

    def test_missing_variables_stop_the_service_naming_them(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for name in (*REQUIRED, "STRIPE_API_BASE"):
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
        with pytest.raises(SystemExit):
            get_settings()
        message = capsys.readouterr().err
        assert message.startswith("payments: refusing to start:")
        for name in REQUIRED:
            assert f"missing required environment variable {name}" in message
