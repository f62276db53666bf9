from functools import lru_cache
from typing import Self

from pydantic import Field, field_validator, model_validator

from ticketing_common.config import EventSettings, load_settings

SERVICE = "payments"


class Settings(EventSettings):
    JWT_KEY: str
    MONGO_URI: str
    STRIPE_KEY: str
    # Points the stripe library at localstripe in dev and tests; unset means Stripe itself.
    STRIPE_API_BASE: str | None = None
    # The last API version that accepts `payment_method_types` on PaymentIntents (the
    # library's own default, 2026-10-28.endive, answers it with a 400).
    STRIPE_API_VERSION: str = "2026-08-26.dahlia"
    # Each call to Stripe gives up after this long (the library's default is 80 s).
    STRIPE_TIMEOUT_SECONDS: float = Field(default=20.0, gt=0)
    # A claim still `pending` after this long belongs to a request that died mid-payment;
    # the next request or listener resolves it. It must outlast a live attempt's calls.
    PAYMENT_CLAIM_TIMEOUT_SECONDS: float = Field(default=120.0, gt=0)
    # How long a request for a record this service replicates (orders: a ticket; payments:
    # an order) waits for it to arrive before answering 404: its event is usually a few
    # milliseconds behind the answer that announced it.
    REPLICA_WAIT_SECONDS: float = Field(default=0.25, ge=0, le=5)
    # Verifies the `Stripe-Signature` of webhooks (`whsec_...`, from the Stripe dashboard,
    # `stripe listen`, or what `make dev` registers with localstripe). Unset: every
    # webhook is refused with a 502 and an error log (nothing can be verified).
    STRIPE_WEBHOOK_SECRET: str | None = None
    # While the endpoint's secret is rotated: a webhook that verifies with this one is
    # accepted too (what Stripe signed before the change, or during its overlap).
    STRIPE_WEBHOOK_SECRET_PREVIOUS: str | None = None
    # Refunds of payments whose order ended cancelled: how often the reconciler looks for
    # due ones, the back-off between tries of one refund, and the tries before a person
    # must look.
    REFUND_INTERVAL_SECONDS: float = Field(default=5.0, gt=0)
    REFUND_RETRY_MIN_SECONDS: float = Field(default=10.0, gt=0)
    REFUND_RETRY_MAX_SECONDS: float = Field(default=3600.0, gt=0)
    REFUND_MAX_ATTEMPTS: int = Field(default=30, ge=1)

    @property
    def webhook_secrets(self) -> list[str]:
        """What a webhook's signature may verify with: the current secret, then the
        previous one during a rotation; none when webhooks are not configured."""
        return [
            secret
            for secret in (self.STRIPE_WEBHOOK_SECRET, self.STRIPE_WEBHOOK_SECRET_PREVIOUS)
            if secret is not None
        ]

    @field_validator("STRIPE_KEY")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not value.startswith("sk_"):
            raise ValueError("must be a Stripe secret key (sk_...)")
        return value

    @field_validator("STRIPE_API_BASE")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_PREVIOUS")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @model_validator(mode="after")
    def _claim_outlasts_attempt(self) -> Self:
        # An attempt makes at most four calls (token, payment, then the cancel and the
        # retrieve of an intent that did not succeed).
        if self.PAYMENT_CLAIM_TIMEOUT_SECONDS <= 4 * self.STRIPE_TIMEOUT_SECONDS:
            raise ValueError("PAYMENT_CLAIM_TIMEOUT_SECONDS must exceed 4 x STRIPE_TIMEOUT_SECONDS")
        return self


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, SERVICE)
