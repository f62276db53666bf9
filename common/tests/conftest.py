from collections.abc import AsyncIterator

import pytest

from ticketing_common.events import EventBus


@pytest.fixture
async def buses() -> AsyncIterator[list[EventBus]]:
    """Buses a test opens; all closed after it."""
    opened: list[EventBus] = []
    yield opened
    for bus in opened:
        await bus.close()
