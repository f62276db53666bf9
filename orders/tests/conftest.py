import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from orders.app import create_app
from orders.config import SERVICE, Settings
from ticketing_common.testing.app import running_client, service_settings
from ticketing_common.testing.stream import Probe, probe_on

# pytest's importlib mode keeps test folders off sys.path; the tests share one helper
# module, named after the service so it cannot shadow another package's.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def settings(jetstream_clean: str) -> Settings:
    return service_settings(Settings, jetstream_clean)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with running_client(create_app(settings)) as http:
        yield http


@pytest.fixture
async def probe(client: AsyncClient, settings: Settings) -> AsyncIterator[Probe]:
    async with probe_on(settings.NATS_URL, SERVICE) as connected:
        yield connected
