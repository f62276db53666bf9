from functools import lru_cache

from pydantic import Field

from ticketing_common.config import ServiceSettings, load_settings


class Settings(ServiceSettings):
    # The gateway the server calls (in k8s the ingress controller's in-cluster address).
    API_BASE_URL: str
    STRIPE_PUBLISHABLE_KEY: str
    # make dev points this at localstripe's stand-in; production loads the real Stripe.js.
    STRIPE_JS_URL: str = "https://js.stripe.com/v3/"
    API_TIMEOUT_SECONDS: float = 10.0
    # The Host of every API call (the ingress routes by host). The browser's own Host is
    # never passed on: a forged one could reach another virtual host of the ingress.
    API_HOST: str = "ticketing.dev"
    # The port of the client's own `/metrics` (none when unset). Not the app's port: the
    # Ingress sends every path outside `/api/...` to the client, `/metrics` included.
    METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)


@lru_cache
def get_settings() -> Settings:
    return load_settings(Settings, "client")
