"""Helpers the services' tests share: real servers on free ports, signed-in cookies.

Submodules: `events` (`eventually`, test-scale event settings), `stream` (`Probe`, a
test's reader of the TICKETING stream), `database` (an in-memory database that yields
like a networked driver), `http` (readers of the error shape), `fixtures` (pytest).
"""

from ticketing_common.testing.servers import (
    NatsServer,
    RedisServer,
    free_port,
    wait_for_port,
)
from ticketing_common.testing.session import TEST_JWT_KEY, cookie_for, random_id

__all__ = [
    "TEST_JWT_KEY",
    "NatsServer",
    "RedisServer",
    "cookie_for",
    "free_port",
    "random_id",
    "wait_for_port",
]
