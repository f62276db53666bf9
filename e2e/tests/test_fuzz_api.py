"""schemathesis against every HTTP service, through the gateway of the whole stack.

Each service's OpenAPI schema is read from the service's own port (the gateway sends
`/openapi.json` to the client); every case goes through the gateway with a signed-up user's
session cookie. The contract (docs/SPEC.md §1): no 5xx, never 422, every 4xx body exactly
`{"errors": [{"message", "field"?}]}`, and a refused write changes nothing (the tickets
listed, the user's tickets and orders, who the cookie signs in as). The cases are
derandomized: the same every run.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from ticketing_devstack.stack import Stack
from ticketing_testing.fuzz import WRITES, Fuzzer, every_page
from ticketing_testing.remote import PASSWORD, order_ticket, sell, sign_up

# Cases per operation and generation mode (positive, negative): the whole module, stack
# start included, stays well under 90 s on two cores. FUZZ_MAX_EXAMPLES=200 digs deeper.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))

# The fuzzer signs up and fails sign-ins far beyond auth's abuse limits, and cheap hashes
# keep its sign-ups fast; neither changes what an answer looks like.
FUZZ_ENV = {
    "SIGNUPS_PER_ADDRESS": "1000000",
    "SIGNUPS_PER_EMAIL": "1000000",
    "SIGNIN_FAILURES_PER_ADDRESS": "1000000",
    "SIGNIN_FAILURES_PER_EMAIL": "1000000",
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "1024",
}

# Signed by Stripe, not by a session: fuzzed for the answers only (a forged call is 400).
WEBHOOK = "/api/payments/webhooks/stripe"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(FUZZ_ENV) as running:
        yield running
    left = running.leftovers()
    assert left == [], f"the stack left {left}"


class World:
    """A buyer (whose cookie the fuzzer sends) and a seller: the buyer with a ticket the
    seller ordered and one nobody did, the seller with one the buyer ordered and one nobody
    did. Their ids are the cases' real ids."""

    def __init__(self, gateway: str) -> None:
        self.seller, self.buyer = sign_up(gateway), sign_up(gateway)
        self.email = self.buyer.get("/api/users/currentuser").json()["currentUser"]["email"]
        self.own_ticket = sell(self.buyer, "Buyer's, ordered", 15)["id"]
        self.own_free_ticket = sell(self.buyer, "Buyer's", "7.25")["id"]
        self.ordered_ticket = sell(self.seller, "Seller's, ordered", "12.50")["id"]
        self.free_ticket = sell(self.seller, "Seller's", 30)["id"]
        self.order = order_ticket(self.buyer, self.ordered_ticket).json()["id"]
        self.others_order = order_ticket(self.seller, self.own_ticket).json()["id"]

    @property
    def cookies(self) -> dict[str, str]:
        return {"session": str(self.buyer.cookies["session"])}

    @property
    def tickets(self) -> list[str]:
        return [self.own_ticket, self.own_free_ticket, self.ordered_ticket, self.free_ticket]

    def state(self, service: str) -> Callable[[], object]:
        """What a refused request to `service` must leave as it was."""
        buyer = self.buyer

        def tickets() -> object:
            listed = every_page(buyer, "/api/tickets")
            return listed, [buyer.get(f"/api/tickets/{t}").json() for t in self.tickets]

        def orders() -> object:
            others = self.seller.get(f"/api/orders/{self.others_order}").json()
            return every_page(buyer, "/api/orders"), others

        def signed_in() -> object:
            return buyer.get("/api/users/currentuser").json()

        if service == "auth":
            return signed_in
        if service == "tickets":
            return tickets
        return lambda: (orders(), tickets())

    def path_parameters(self) -> dict[str, list[str]]:
        return {"ticket_id": self.tickets, "order_id": [self.order, self.others_order]}

    def hinted(self, raw: dict[str, Any]) -> dict[str, Any]:
        """`raw` with SPEC §3's rules as JSON Schema, and this world's ids and cards as
        choices, so that positive cases get past validation (signed up, signed in, sold,
        ordered, paid) instead of stopping at a 400 like nearly every random string."""
        schema = copy.deepcopy(raw)
        unknown_id = "0" * 23 + "1"
        # Enums, not patterns: an anyOf of an enum and a pattern it matches is generated
        # as the pattern alone.
        orders = {"enum": [self.order, self.others_order, unknown_id]}
        price = {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 999999},
                {"type": "string", "pattern": "^[0-9]{1,6}\\.[0-9]{2}$"},
            ]
        }
        title = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^\\S"}
        fields = {
            "SignUp": {
                "email": {"type": "string", "format": "email"},
                "password": {"type": "string", "minLength": 4, "maxLength": 20},
            },
            "SignIn": {
                "email": {"enum": [self.email, "nobody@example.com"]},
                "password": {"enum": [PASSWORD, "wrong password"]},
            },
            "TicketCreate": {"title": title, "price": price},
            "TicketUpdate": {"title": title, "price": price},
            "OrderCreate": {"ticketId": {"enum": [*self.tickets, unknown_id]}},
            "PaymentCreate": {
                "orderId": orders,
                "token": {
                    "enum": [
                        "pm_card_visa",
                        "pm_card_chargeCustomerFail",
                        "pm_card_threeDSecure2Required",
                        "tok_visa",
                        "tok_unknown",
                        "card_unknown",
                    ]
                },
            },
        }
        for name, properties in fields.items():
            if name in schema["components"]["schemas"]:
                schema["components"]["schemas"][name]["properties"].update(properties)
        for item in schema["paths"].values():
            for method, operation in item.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path":
                        parameter["schema"] = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
                    elif parameter["name"] == "limit":
                        parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 200}
                # A POST without a body still declares JSON (SPEC §1): send an object.
                if method == "post" and "requestBody" not in operation:
                    operation["requestBody"] = {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    }
                # And bodies of other types, each a 415 that must change nothing.
                if "requestBody" in operation:
                    operation["requestBody"]["content"].update(OTHER_MEDIA_TYPES)
        if WEBHOOK in schema["paths"]:
            schema["paths"][WEBHOOK]["post"]["parameters"] = [
                {"name": "Stripe-Signature", "in": "header", "schema": {"type": "string"}}
            ]
        return schema


OTHER_MEDIA_TYPES = {
    "text/plain": {"schema": {"type": "string"}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
}

# Their success changes what `World.state` reads later, through events (a reservation, a
# release, an order cancelled by a price change, an order completed by its payment).
EVENTFUL = frozenset(
    {
        "PUT /api/tickets/{ticket_id}",
        "POST /api/orders",
        "DELETE /api/orders/{order_id}",
        "POST /api/payments",
        "POST /api/payments/{payment_id}/complete",
    }
)


@pytest.mark.timeout(max(90, 6 * MAX_EXAMPLES))
@pytest.mark.parametrize("service", ["auth", "tickets", "orders", "payments"])
def test_fuzzed_requests_keep_the_error_contract_and_refusals_change_nothing(
    stack: Stack, service: str
) -> None:
    world = World(stack.gateway_url)
    port = stack.processes[service].port
    raw = httpx.get(f"http://127.0.0.1:{port}/openapi.json", trust_env=False).json()
    fuzzer = Fuzzer(
        stack.gateway_url,
        world.cookies,
        world.state(service),
        unchecked_paths=frozenset({WEBHOOK}),
        eventful=EVENTFUL,
    )

    # The schema as the service declares it (random strings, wrong types, missing fields),
    # then with the rules and real ids filled in (requests that get through).
    fuzzer.fuzz(
        schemathesis.openapi.from_dict(raw),
        max_examples=MAX_EXAMPLES,
        path_parameters=world.path_parameters(),
    )
    fuzzer.fuzz(
        schemathesis.openapi.from_dict(world.hinted(raw)),
        max_examples=MAX_EXAMPLES,
        modes=[GenerationMode.POSITIVE],
        path_parameters=world.path_parameters(),
    )

    assert fuzzer.findings == [], "\n".join(fuzzer.findings)
    assert sorted(fuzzer.answers) == raw_operations(raw)
    # The run exercised the routes, not only validation: every write was refused at least
    # once (so its state check ran), and every body got past validation at least once.
    for label, answers in fuzzer.answers.items():
        if label.split()[0] in WRITES:
            assert any(status >= 400 for status in answers), (label, answers)
        if label in takes_a_body(raw):
            assert any(status != 400 for status in answers), (label, answers)


def takes_a_body(raw: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in raw["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }


def raw_operations(raw: dict[str, Any]) -> list[str]:
    return sorted(
        f"{method.upper()} {path}" for path, item in raw["paths"].items() for method in item
    )
