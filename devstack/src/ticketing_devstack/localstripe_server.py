"""`python -m ticketing_devstack.localstripe_server --port P`: localstripe for `make dev`
and the tests (started through `servers.LocalStripeServer`).

Loopback only, fresh state, nothing written to disk: localstripe's own launcher binds every
interface, reloads `/tmp/localstripe.pickle` and pickles its whole store after each write
(slower as data grows, and shared between runs).

localstripe also lists objects by scanning its whole store, and it lists a charge's refunds
every time it shows a charge (`refunded`, `amount_refunded`), so each payment cost time in
proportion to everything stored before it (83 payments/s when empty, 7/s after 4,000).
`index_by_type` keeps the store's keys by object type as well, in the store's own order,
so a listing reads only the objects of its type.

`--webhook URL --webhook-secret SECRET` registers one webhook endpoint at start (as
`POST /_config/webhooks/{id}` would), for the PaymentIntent events payments handles:
localstripe signs each delivery with the secret (`Stripe-Signature`, Stripe's scheme).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

# The events payments acts on (docs/SPEC.md §3); localstripe sends no others to it.
WEBHOOK_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")


def index_by_type(resources: Any) -> None:
    """Make localstripe's listings read only the objects of their type.

    The store is one dict keyed `"<object>:<id>"`; each listing filtered every key by its
    prefix. Beside it, `_by_type[object]` holds the same keys in the same order (a dict
    keeps the order of first insertion, as the store does), so a listing returns what it
    returned before, read from the objects of its type only.
    """
    store_class = resources.Store
    plain_dict: Any = dict

    def by_type(store: Any) -> dict[str, dict[str, Any]]:
        index: dict[str, dict[str, Any]] | None = store.__dict__.get("_by_type")
        if index is None:
            index = {}
            for key, value in plain_dict.items(store):
                index.setdefault(key.partition(":")[0], {})[key] = value
            store._by_type = index
        return index

    def setitem(store: Any, key: str, value: Any) -> None:
        plain_dict.__setitem__(store, key, value)
        by_type(store).setdefault(key.partition(":")[0], {})[key] = value
        store.dump_to_disk()

    def delitem(store: Any, key: str) -> None:
        plain_dict.__delitem__(store, key)
        by_type(store).get(key.partition(":")[0], {}).pop(key, None)
        store.dump_to_disk()

    def clear(store: Any) -> None:
        plain_dict.clear(store)
        store._by_type = {}

    def update(store: Any, *args: Any, **kwargs: Any) -> None:
        plain_dict.update(store, *args, **kwargs)
        store.__dict__.pop("_by_type", None)  # rebuilt from the store on the next read

    store_class.__setitem__ = setitem
    store_class.__delitem__ = delitem
    store_class.clear = clear
    store_class.update = update

    base = resources.StripeObject

    def list_all(
        cls: Any, /, url: Any, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listing = resources.List(url, limit=limit, starting_after=starting_after)
        listing._list = list(by_type(resources.store).get(cls.object, {}).values())
        return listing

    base._api_list_all = classmethod(list_all)


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
    index_by_type(resources)
    if args.webhook:
        register_webhook("ticketing", args.webhook, args.webhook_secret, list(WEBHOOK_EVENTS))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
