"""What the tests share, as a pytest plugin (`fixtures`, loaded through the `pytest11` entry
point) and helper modules; a dev-only workspace member, never in a service's image.

- `fixtures`: servers on free ports (`nats_url`, `redis_url`, `nats_server`), an empty
  stream (`jetstream_clean`), and a service's `settings` / `client` / `probe` for the
  `service_under_test` its tests' conftest.py names.
- `session`, `http`: signed-in cookies and headers, readers of the error shape.
- `services`: a service's settings at test scale, its app running with an httpx client and
  its lifespan state.
- `database`: in-memory databases that yield like a networked driver, for `connect=`.
- `events`, `stream`, `factories`: waiting on event-driven code, a test's reader and
  publisher on the TICKETING stream, and the events other services would publish.
- `api`: requests to the services' routes; `stripe`, `checkout`: localstripe, a Stripe
  that misbehaves on demand, and the payments service on them.
- `remote`, `processes`: the running system through its public surface, and single
  processes of the `make dev` plan (end-to-end and fault tests).
- `deployment`: the Kubernetes manifests, skaffold.yaml and the Dockerfile as data.
"""

from ticketing_testing.session import TEST_JWT_KEY, cookie_for, random_id

__all__ = ["TEST_JWT_KEY", "cookie_for", "random_id"]
