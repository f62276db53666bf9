"""Every tickets row of docs/SPEC.md §3 through HTTP, bad inputs included."""

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient

from ticketing_common.events import STREAM_NAME, Subjects
from ticketing_testing import random_id
from ticketing_testing.api import TICKETS, create_ticket
from ticketing_testing.http import errors, fields, signed_in
from ticketing_testing.stream import Probe, reserve
from tickets.repository import Tickets

JSON = {"content-type": "application/json"}
MALFORMED_IDS = ["abc", "A" * 24, "a" * 25, "a" * 23, "g" * 24, "0" * 23 + "-"]
BAD_PRICES: list[Any] = [
    0,
    "0",
    0.0,
    -10,
    "-1.50",
    1000000,
    999999.991,
    "1000000.00",
    10.001,
    "10.001",
    0.001,
    "abc",
    "",
    "  ",
    "NaN",
    "Infinity",
    "1,5",
    True,
    False,
    None,
    [],
    [10],
    {"amount": 10},
]
BAD_TITLES: list[Any] = ["", "   ", "x" * 201, 5, 1.5, True, None, [], {"t": "x"}]


class TestCreateTicket:
    async def test_signed_out_is_401(self, client: AsyncClient) -> None:
        response = await client.post(TICKETS, json={"title": "concert", "price": 20})
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    @pytest.mark.parametrize(
        "content",
        [b'{"title": "", "price": "abc"}', b"{}", b'{"title": ', b"[1, 2]", b"", b"null"],
        ids=["invalid-fields", "empty-object", "malformed-json", "array", "no-body", "null"],
    )
    async def test_signed_out_is_401_before_the_body_is_validated(
        self, client: AsyncClient, content: bytes
    ) -> None:
        response = await client.post(TICKETS, content=content, headers=JSON)
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_valid_ticket_is_201_with_the_ticket(self, client: AsyncClient) -> None:
        user_id = random_id()
        response = await client.post(
            TICKETS, json={"title": "concert", "price": 19.99}, headers=signed_in(user_id)
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "title", "price", "userId", "version"}
        assert len(body["id"]) == 24 and body["id"] == body["id"].lower()
        assert body["title"] == "concert"
        assert body["price"] == 19.99
        assert '"price":19.99' in response.text
        assert body["userId"] == user_id
        assert body["version"] == 0
        shown = await client.get(f"{TICKETS}/{body['id']}")
        assert shown.json() == body

    async def test_title_is_trimmed(self, client: AsyncClient) -> None:
        body = await create_ticket(client, random_id(), title="  concert \n")
        assert body["title"] == "concert"

    async def test_title_of_200_characters_is_accepted(self, client: AsyncClient) -> None:
        body = await create_ticket(client, random_id(), title="x" * 200)
        assert body["title"] == "x" * 200

    @pytest.mark.parametrize("title", BAD_TITLES)
    async def test_bad_title_is_400_with_field_title(self, client: AsyncClient, title: Any) -> None:
        response = await client.post(
            TICKETS, json={"title": title, "price": 10}, headers=signed_in()
        )
        assert response.status_code == 400
        assert fields(response) == ["title"]

    @pytest.mark.parametrize("escaped", [b"\\ud800", b"x\\udfff", b"\\udc00\\ud800"])
    async def test_title_with_half_a_surrogate_pair_is_400_with_field_title(
        self, client: AsyncClient, probe: Probe, escaped: bytes
    ) -> None:
        body = b'{"title": "' + escaped + b'", "price": 10}'
        response = await client.post(TICKETS, content=body, headers={**JSON, **signed_in()})
        assert response.status_code == 400
        assert errors(response) == [{"message": "Must be valid text", "field": "title"}]
        assert (await client.get(TICKETS)).json() == []
        assert await probe.stored() == []

    @pytest.mark.parametrize("price", BAD_PRICES)
    async def test_bad_price_is_400_with_field_price(self, client: AsyncClient, price: Any) -> None:
        response = await client.post(
            TICKETS, json={"title": "concert", "price": price}, headers=signed_in()
        )
        assert response.status_code == 400
        assert fields(response) == ["price"]
        assert errors(response)[0]["message"]

    @pytest.mark.parametrize(
        ("price", "shown", "text"),
        [
            ("10.00", 10, '"price":10,'),
            (" 5.5 ", 5.5, '"price":5.5,'),
            ("19.99", 19.99, '"price":19.99,'),
            (0.01, 0.01, '"price":0.01,'),
            (999999.99, 999999.99, '"price":999999.99,'),
            (10, 10, '"price":10,'),
            (0.1, 0.1, '"price":0.1,'),
        ],
    )
    async def test_price_is_shown_as_the_exact_json_number(
        self, client: AsyncClient, price: Any, shown: float, text: str
    ) -> None:
        response = await client.post(
            TICKETS, json={"title": "concert", "price": price}, headers=signed_in()
        )
        assert response.status_code == 201
        assert response.json()["price"] == shown
        assert text in response.text

    async def test_missing_fields_are_400_one_entry_each(self, client: AsyncClient) -> None:
        response = await client.post(TICKETS, json={}, headers=signed_in())
        assert response.status_code == 400
        assert fields(response) == ["price", "title"]
        assert all(entry["message"] == "Required" for entry in errors(response))

    async def test_malformed_json_is_400_without_field(self, client: AsyncClient) -> None:
        response = await client.post(
            TICKETS, content=b'{"title": "x", ', headers={**JSON, **signed_in()}
        )
        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body is not valid JSON"}]

    @pytest.mark.parametrize("body", [[], ["concert", 10], "text", 3, None])
    async def test_non_object_body_is_400_without_field(
        self, client: AsyncClient, body: Any
    ) -> None:
        # JSON too: json=None sends no body and so no Content-Type (415).
        response = await client.post(TICKETS, json=body, headers={**JSON, **signed_in()})
        assert response.status_code == 400
        assert errors(response) == [{"message": "Request body must be a JSON object"}]

    async def test_trailing_slash_answers_without_redirect(self, client: AsyncClient) -> None:
        response = await client.post(
            TICKETS + "/", json={"title": "concert", "price": 5}, headers=signed_in()
        )
        assert response.status_code == 201


class TestListTickets:
    async def test_no_tickets_is_an_empty_list(self, client: AsyncClient) -> None:
        response = await client.get(TICKETS)
        assert response.status_code == 200
        assert response.json() == []

    async def test_unreserved_tickets_oldest_first_without_sign_in(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = [await create_ticket(client, random_id(), title=f"t{i}") for i in range(5)]
        await reserve(probe, created[2]["id"])
        response = await client.get(TICKETS)
        assert response.status_code == 200
        assert response.json() == [created[i] for i in (0, 1, 3, 4)]
        assert (await client.get(TICKETS + "/")).json() == response.json()


class TestShowTicket:
    async def test_known_ticket_is_200(self, client: AsyncClient) -> None:
        created = await create_ticket(client, random_id(), price="12.30")
        response = await client.get(f"{TICKETS}/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created
        assert response.json()["price"] == 12.3

    async def test_unknown_ticket_is_404(self, client: AsyncClient) -> None:
        response = await client.get(f"{TICKETS}/{random_id()}")
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    @pytest.mark.parametrize("bad_id", MALFORMED_IDS)
    async def test_malformed_id_is_404(self, client: AsyncClient, bad_id: str) -> None:
        response = await client.get(f"{TICKETS}/{bad_id}")
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    async def test_reserved_ticket_shows_its_order_id(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        order_id = await reserve(probe, created["id"])
        body = (await client.get(f"{TICKETS}/{created['id']}")).json()
        assert body == {**created, "orderId": order_id, "version": 1}


class TestUpdateTicket:
    async def test_owner_updates_title_and_price(self, client: AsyncClient) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "  new title ", "price": "45.50"},
            headers=signed_in(owner),
        )
        assert response.status_code == 200
        expected = {**created, "title": "new title", "price": 45.5, "version": 1}
        assert response.json() == expected
        assert (await client.get(f"{TICKETS}/{created['id']}")).json() == expected

    async def test_unknown_ticket_is_404(self, client: AsyncClient) -> None:
        response = await client.put(
            f"{TICKETS}/{random_id()}", json={"title": "x", "price": 1}, headers=signed_in()
        )
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]

    @pytest.mark.parametrize("bad_id", MALFORMED_IDS)
    async def test_malformed_id_is_404(self, client: AsyncClient, bad_id: str) -> None:
        response = await client.put(
            f"{TICKETS}/{bad_id}", json={"title": "x", "price": 1}, headers=signed_in()
        )
        assert response.status_code == 404

    @pytest.mark.parametrize(
        "content",
        [b'{"title": "x", "price": 1}', b'{"price": "abc"}', b'{"title": ', b"[]"],
        ids=["valid", "invalid-fields", "malformed-json", "array"],
    )
    async def test_signed_out_is_401_before_the_body_is_validated(
        self, client: AsyncClient, content: bytes
    ) -> None:
        created = await create_ticket(client, random_id())
        response = await client.put(f"{TICKETS}/{created['id']}", content=content, headers=JSON)
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]

    async def test_not_the_owner_is_401_and_nothing_changes(self, client: AsyncClient) -> None:
        created = await create_ticket(client, random_id())
        response = await client.put(
            f"{TICKETS}/{created['id']}", json={"title": "mine", "price": 1}, headers=signed_in()
        )
        assert response.status_code == 401
        assert errors(response) == [{"message": "Not authorized"}]
        assert (await client.get(f"{TICKETS}/{created['id']}")).json() == created

    async def test_not_the_owner_of_a_reserved_ticket_is_401_not_400(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        created = await create_ticket(client, random_id())
        await reserve(probe, created["id"])
        response = await client.put(
            f"{TICKETS}/{created['id']}", json={"title": "x", "price": 1}, headers=signed_in()
        )
        assert response.status_code == 401

    async def test_reserved_ticket_is_400(self, client: AsyncClient, probe: Probe) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        order_id = await reserve(probe, created["id"])
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "new", "price": 30},
            headers=signed_in(owner),
        )
        assert response.status_code == 400
        assert errors(response) == [{"message": "Cannot edit a reserved ticket"}]
        shown = (await client.get(f"{TICKETS}/{created['id']}")).json()
        assert shown == {**created, "version": 1, "orderId": order_id}

    @pytest.mark.parametrize("price", BAD_PRICES)
    async def test_bad_price_is_400_with_field_price(self, client: AsyncClient, price: Any) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "new", "price": price},
            headers=signed_in(owner),
        )
        assert response.status_code == 400
        assert fields(response) == ["price"]

    @pytest.mark.parametrize("title", BAD_TITLES)
    async def test_bad_title_is_400_with_field_title(self, client: AsyncClient, title: Any) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": title, "price": 5},
            headers=signed_in(owner),
        )
        assert response.status_code == 400
        assert fields(response) == ["title"]

    @pytest.mark.parametrize(
        ("body", "expected"),
        [({}, ["price", "title"]), ({"title": "x"}, ["price"]), ({"price": 3}, ["title"])],
    )
    async def test_missing_fields_are_400(
        self, client: AsyncClient, body: dict[str, Any], expected: list[str]
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        response = await client.put(
            f"{TICKETS}/{created['id']}", json=body, headers=signed_in(owner)
        )
        assert response.status_code == 400
        assert fields(response) == expected

    async def test_malformed_json_and_non_object_are_400_for_the_owner(
        self, client: AsyncClient
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        url = f"{TICKETS}/{created['id']}"
        malformed = await client.put(
            url, content=b"{'title'}", headers={**JSON, **signed_in(owner)}
        )
        assert malformed.status_code == 400
        assert errors(malformed) == [{"message": "Request body is not valid JSON"}]
        array = await client.put(url, json=["x", 1], headers=signed_in(owner))
        assert array.status_code == 400
        assert errors(array) == [{"message": "Request body must be a JSON object"}]

    async def test_update_that_loses_a_race_is_409_and_a_retry_works(
        self, client: AsyncClient, probe: Probe, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        url = f"{TICKETS}/{created['id']}"
        original_get = Tickets.get
        raced = False

        async def get_then_let_another_request_win(self: Tickets, ticket_id: Any) -> Any:
            nonlocal raced
            ticket = await original_get(self, ticket_id)
            if not raced:
                raced = True
                # Between this request's read and its write, another request updates.
                winner = await client.put(
                    url, json={"title": "winner", "price": 1}, headers=signed_in(owner)
                )
                assert winner.status_code == 200
            return ticket

        monkeypatch.setattr(Tickets, "get", get_then_let_another_request_win)
        lost = await client.put(url, json={"title": "loser", "price": 2}, headers=signed_in(owner))
        assert lost.status_code == 409
        assert len(errors(lost)) == 1 and "field" not in errors(lost)[0]
        shown = (await client.get(url)).json()
        assert (shown["title"], shown["price"], shown["version"]) == ("winner", 1, 1)
        updates = await probe.stored(Subjects.TICKET_UPDATED)
        assert [(m.data["title"], m.data["version"]) for m in updates] == [("winner", 1)]

        retried = await client.put(
            url, json={"title": "loser", "price": 2}, headers=signed_in(owner)
        )
        assert retried.status_code == 200
        assert (retried.json()["title"], retried.json()["version"]) == ("loser", 2)

    async def test_update_racing_a_reservation_is_400(
        self, client: AsyncClient, probe: Probe, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        original_get = Tickets.get
        raced = False

        async def get_then_let_an_order_reserve(self: Tickets, ticket_id: Any) -> Any:
            nonlocal raced
            ticket = await original_get(self, ticket_id)
            if not raced:
                raced = True
                await reserve(probe, created["id"])
            return ticket

        monkeypatch.setattr(Tickets, "get", get_then_let_an_order_reserve)
        response = await client.put(
            f"{TICKETS}/{created['id']}",
            json={"title": "new", "price": 2},
            headers=signed_in(owner),
        )
        assert response.status_code == 400
        assert errors(response) == [{"message": "Cannot edit a reserved ticket"}]

    async def test_concurrent_updates_lose_no_write(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        url = f"{TICKETS}/{created['id']}"
        responses = await asyncio.gather(
            *(
                client.put(url, json={"title": f"t{i}", "price": i + 1}, headers=signed_in(owner))
                for i in range(10)
            )
        )
        assert {r.status_code for r in responses} <= {200, 409}
        applied = sorted((r.json() for r in responses if r.status_code == 200), key=_version)
        # Every write that answered 200 is one version, none overwritten unseen.
        assert [body["version"] for body in applied] == list(range(1, len(applied) + 1))
        assert (await client.get(url)).json() == applied[-1]
        updates = await probe.stored(Subjects.TICKET_UPDATED)
        assert [(m.data["version"], m.data["title"]) for m in updates] == [
            (body["version"], body["title"]) for body in applied
        ]

    async def test_failed_updates_publish_nothing(self, client: AsyncClient, probe: Probe) -> None:
        owner = random_id()
        created = await create_ticket(client, owner)
        url = f"{TICKETS}/{created['id']}"
        not_owner = await client.put(url, json={"title": "x", "price": 1}, headers=signed_in())
        bad_title = await client.put(url, json={"title": "", "price": 1}, headers=signed_in(owner))
        signed_out = await client.put(url, json={"title": "x", "price": 1})
        statuses = [r.status_code for r in (not_owner, bad_title, signed_out)]
        assert statuses == [401, 400, 401]
        assert await probe.stored(Subjects.TICKET_UPDATED) == []
        assert (await client.get(url)).json() == created

    async def test_unsupported_method_is_405(self, client: AsyncClient) -> None:
        created = await create_ticket(client, random_id())
        response = await client.delete(f"{TICKETS}/{created['id']}", headers=signed_in())
        assert response.status_code == 405
        assert errors(response) == [{"message": "Method not allowed"}]


def _version(body: dict[str, Any]) -> int:
    version: int = body["version"]
    return version


class TestHealth:
    async def test_healthz_is_200(self, client: AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200

    async def test_readyz_checks_database_and_consumers(
        self, client: AsyncClient, probe: Probe
    ) -> None:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "events": True}
        await probe.js.delete_consumer(STREAM_NAME, probe.durable(Subjects.ORDER_CREATED))
        missing = await client.get("/readyz")
        assert missing.status_code == 503
        assert errors(missing) == [{"message": "Not ready: events"}]

    async def test_unknown_route_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/api/tickets/a/b")
        assert response.status_code == 404
        assert errors(response) == [{"message": "Not Found"}]
