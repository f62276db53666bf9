"""`python -m ticketing_devstack.localstripe_server --port P`: localstripe for `make dev`
and the tests (started through `servers.LocalStripeServer`).

Loopback only, fresh state, nothing written to disk: localstripe's own launcher binds every
interface, reloads `/tmp/localstripe.pickle` and pickles its whole store after each write
(slower as data grows, and shared between runs).

`--webhook URL --webhook-secret SECRET` registers one webhook endpoint at start (as
`POST /_config/webhooks/{id}` would), for the PaymentIntent events payments handles:
localstripe signs each delivery with the secret (`Stripe-Signature`, Stripe's scheme).
"""

from __future__ import annotations

import argparse
import logging

# The events payments acts on (docs/SPEC.md §3); localstripe sends no others to it.
WEBHOOK_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--webhook", help="URL localstripe sends its events to")
    parser.add_argument("--webhook-secret", help="the secret it signs them with")
    args = parser.parse_args(argv)
    if bool(args.webhook) != bool(args.webhook_secret):
        parser.error("--webhook and --webhook-secret go together")

    # Imported here: localstripe is a development dependency, not one of the services'.
    import localstripe.resources as resources
    from aiohttp import web
    from localstripe.server import app
    from localstripe.webhooks import register_webhook

    resources.Store.dump_to_disk = lambda self: None
    if args.webhook:
        register_webhook("ticketing", args.webhook, args.webhook_secret, list(WEBHOOK_EVENTS))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
