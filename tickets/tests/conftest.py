import pytest

from ticketing_testing.services import ServiceUnderTest
from tickets.app import create_app
from tickets.config import SERVICE, Settings


@pytest.fixture
def service_under_test() -> ServiceUnderTest[Settings]:
    """The service the plugin's `settings`, `client` and `probe` fixtures are for."""
    return ServiceUnderTest(SERVICE, Settings, create_app)
