"""`python -m ticketing_devstack.localstripe_server --port P`: localstripe for `make dev`
and the tests (started through `servers.LocalStripeServer`).

Loopback only, fresh state, nothing written to disk: localstripe's own launcher binds every
interface, reloads `/tmp/localstripe.pickle` and pickles its whole store after each write
(slower as data grows, and shared between runs).
"""

from __future__ import annotations

import argparse
import logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args(argv)

    # Imported here: localstripe is a development dependency, not one of the services'.
    import localstripe.resources as resources
    from aiohttp import web
    from localstripe.server import app

    resources.Store.dump_to_disk = lambda self: None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
