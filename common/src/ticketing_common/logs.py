"""Logging setup of every process (HTTP services and the expiration worker)."""

from __future__ import annotations

import logging

from ticketing_common.tracing import log_handler


def configure_logging() -> None:
    """INFO and up to stderr, each line with its trace id (as `logging.basicConfig`, it
    does nothing when the root logger already has a handler)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(log_handler())
        root.setLevel(logging.INFO)
    # Their INFO lines repeat every HTTP call (two per Stripe call in the stripe library,
    # one per request in httpx): noise on the hot path; warnings and errors still show.
    for chatty in ("stripe", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
