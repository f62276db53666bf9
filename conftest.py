import importlib

# The shared fixtures come from the ticketing_testing plugin (its `pytest11` entry point).

# pytest's importlib mode names test modules after their folders (`auth.tests.test_routes`)
# and would register `auth` as an empty namespace package, hiding the real service
# package of the same name: import the real ones first.
for _package in ("auth", "tickets", "orders", "payments", "expiration", "client"):
    importlib.import_module(_package)
