"""The names this module had before common was split by concern; kept until every
service imports them from their own modules (`app`, `http.*`, `logs`, `events.runtime`)."""

from ticketing_common.app import new_app
from ticketing_common.events.runtime import EventRuntime, event_runtime
from ticketing_common.http.body_checks import BODY_METHODS, MAX_JSON_DEPTH
from ticketing_common.http.health import ReadyCheck, standard_ready
from ticketing_common.http.middleware import StripTrailingSlash
from ticketing_common.http.routing import ServiceApp, ServiceRoute
from ticketing_common.logs import configure_logging

__all__ = [
    "BODY_METHODS",
    "MAX_JSON_DEPTH",
    "EventRuntime",
    "ReadyCheck",
    "ServiceApp",
    "ServiceRoute",
    "StripTrailingSlash",
    "configure_logging",
    "event_runtime",
    "new_app",
    "standard_ready",
]
