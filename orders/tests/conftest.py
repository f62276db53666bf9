import pytest

from orders.app import create_app
from orders.config import SERVICE, Settings
from ticketing_testing.services import ServiceUnderTest


@pytest.fixture
def service_under_test() -> ServiceUnderTest[Settings]:
    """The service the plugin's `settings`, `client` and `probe` fixtures are for."""
    return ServiceUnderTest(SERVICE, Settings, create_app)
