import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# pytest's importlib mode keeps test folders off sys.path; the tests share one helper
# module, named after the service so it cannot shadow another package's.
sys.path.insert(0, str(Path(__file__).parent))

from payments_support import LocalStripe, Service, payments_settings, running_service

from payments.config import SERVICE, Settings
from ticketing_common.testing.stream import Probe, probe_on


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
    return payments_settings(jetstream_clean, localstripe.url)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with running_service(settings) as running:
        yield running


@pytest.fixture
async def probe(jetstream_clean: str) -> AsyncIterator[Probe]:
    async with probe_on(jetstream_clean, SERVICE) as connected:
        yield connected
