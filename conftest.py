# Fixtures shared by every package's tests (real nats-server / redis-server on free ports).
pytest_plugins = ["ticketing_common.testing.fixtures"]
