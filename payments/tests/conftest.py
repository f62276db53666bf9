from collections.abc import AsyncIterator, Iterator

import pytest

from payments.app import create_app
from payments.config import SERVICE, Settings
from ticketing_testing.checkout import PaymentsService, payments_settings, running_payments
from ticketing_testing.services import ServiceUnderTest
from ticketing_testing.stripe import LocalStripe


@pytest.fixture
def service_under_test() -> ServiceUnderTest[Settings]:
    """The service the plugin's `probe` (and `client`) fixtures are for."""
    return ServiceUnderTest(SERVICE, Settings, create_app)


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    await localstripe_server.clear()
    return localstripe_server


@pytest.fixture
def settings(jetstream_clean: str, localstripe: LocalStripe) -> Settings:
    """The plugin's settings, paying through localstripe."""
    return payments_settings(jetstream_clean, localstripe.url)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[PaymentsService]:
    async with running_payments(settings) as running:
        yield running
