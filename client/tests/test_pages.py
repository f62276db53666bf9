# Fixtures arrive by name and untyped, as the root config means tests to be (its
# `*.tests.*` override does not match the `test_x` module names mypy gives them here).
# mypy: disable-error-code="no-untyped-def"
"""The pages (docs/SPEC.md §6), rendered by the client against a fake gateway."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

SIGNED_OUT_NAV = ["GitTix", "Sign Up", "Sign In"]
SIGNED_IN_NAV = ["GitTix", "Sell Tickets", "My Orders", "Sign Out"]


def form_posting_to(page, api_path: str) -> dict[str, str]:
    forms: list[dict[str, str]] = [f for f in page.forms() if f.get("data-api") == api_path]
    assert len(forms) == 1, page.forms()
    return forms[0]


class TestHeader:
    async def test_signed_out_header_offers_sign_up_and_sign_in(self, browser):
        page = await browser.get("/")

        assert page.status == 200
        assert page.nav == SIGNED_OUT_NAV
        assert ("GitTix", "/") in page.links
        assert ("Sign Up", "/auth/signup") in page.links
        assert ("Sign In", "/auth/signin") in page.links

    async def test_signed_in_header_offers_selling_orders_and_sign_out(self, browser, fake_api):
        page = await browser.get("/", cookies=fake_api.sign_in())

        assert page.nav == SIGNED_IN_NAV
        assert ("Sell Tickets", "/tickets/new") in page.links
        assert ("My Orders", "/orders") in page.links
        # Sign Out is a button posting JSON to the API, not a link a GET could follow.
        assert "Sign Out" in page.buttons
        assert form_posting_to(page, "/api/users/signout")["data-next"] == "/"
        assert not [href for text, href in page.links if "signout" in href]

    @pytest.mark.parametrize("path", ["/auth/signup", "/auth/signin", "/tickets/new", "/orders"])
    async def test_every_page_shows_the_signed_in_header(self, browser, fake_api, path):
        page = await browser.get(path, cookies=fake_api.sign_in())

        assert page.status == 200
        assert page.nav == SIGNED_IN_NAV

    async def test_unknown_session_cookie_shows_the_signed_out_header(self, browser):
        page = await browser.get("/", cookies={"session": "forged"})

        assert page.nav == SIGNED_OUT_NAV


class TestForwarding:
    async def test_browser_cookie_and_host_reach_the_api(self, browser, fake_api):
        cookies = fake_api.sign_in()

        await browser.get("/", cookies=cookies, headers={"X-Other": "not forwarded"})

        assert sorted(fake_api.seen_paths()) == ["GET /api/tickets", "GET /api/users/currentuser"]
        for seen in fake_api.seen:
            # The browser asked http://ticketing.dev; the client's gateway is gateway.test.
            assert seen.headers["host"] == "ticketing.dev"
            assert seen.headers["cookie"] == f"session={cookies['session']}"
            assert "x-other" not in seen.headers

    async def test_signed_out_browser_sends_no_cookie_to_the_api(self, browser, fake_api):
        await browser.get("/")

        assert fake_api.seen
        assert all("cookie" not in seen.headers for seen in fake_api.seen)

    async def test_cookie_set_by_an_api_answer_is_never_sent_for_another_browser(
        self, browser, fake_api
    ):
        fake_api.answer(
            "GET",
            "/api/tickets",
            200,
            "[]",
            headers={"Set-Cookie": "session=someone-elses-session; Path=/"},
        )
        await browser.get("/", cookies=fake_api.sign_in())
        fake_api.canned.clear()
        fake_api.seen.clear()

        await browser.get("/")

        assert all("cookie" not in seen.headers for seen in fake_api.seen)


class TestTicketList:
    async def test_tickets_show_title_price_with_two_decimals_and_link(self, browser, fake_api):
        concert = fake_api.add_ticket("Concert", 20)
        opera = fake_api.add_ticket("Opera", 19.9)
        match = fake_api.add_ticket("Match & <Final>", 999999.99)

        page = await browser.get("/")

        assert page.status == 200
        assert "Title Price Link" in page.text
        assert "Concert $20.00 View" in page.text
        assert "Opera $19.90 View" in page.text
        assert "Match & <Final> $999999.99 View" in page.text
        assert "<Final>" not in page.response.text  # escaped, not markup
        assert ("View", f"/tickets/{concert['id']}") in page.links
        assert ("View", f"/tickets/{opera['id']}") in page.links
        assert ("View", f"/tickets/{match['id']}") in page.links

    async def test_no_tickets_says_so(self, browser):
        page = await browser.get("/")

        assert page.status == 200
        assert "No tickets for sale right now." in page.text


class TestAuthForms:
    @pytest.mark.parametrize(
        ("path", "button", "api_path", "password_autocomplete"),
        [
            ("/auth/signup", "Sign Up", "/api/users/signup", "new-password"),
            ("/auth/signin", "Sign In", "/api/users/signin", "current-password"),
        ],
    )
    async def test_form_has_email_password_and_button_and_posts_to_the_api(
        self, browser, path, button, api_path, password_autocomplete
    ):
        page = await browser.get(path)

        assert page.status == 200
        assert page.labels == ["Email", "Password"]
        assert button in page.buttons
        form = form_posting_to(page, api_path)
        assert form["data-next"] == "/"
        names = {field.get("name"): field.get("type") for field in page.inputs()}
        assert names == {"email": "email", "password": "password"}
        (password,) = [field for field in page.inputs() if field.get("name") == "password"]
        assert password["autocomplete"] == password_autocomplete


class TestSignOut:
    async def test_sign_out_page_offers_the_button_and_a_get_signs_nobody_out(
        self, browser, fake_api
    ):
        cookies = fake_api.sign_in()

        page = await browser.get("/auth/signout", cookies=cookies)

        assert page.status == 200
        assert "set-cookie" not in page.response.headers
        assert "POST /api/users/signout" not in fake_api.seen_paths()
        assert page.buttons.count("Sign Out") == 2  # the header's and the page's
        forms = [f for f in page.forms() if f.get("data-api") == "/api/users/signout"]
        assert [f["data-next"] for f in forms] == ["/", "/"]

    async def test_sign_out_page_when_signed_out_says_so(self, browser):
        page = await browser.get("/auth/signout")

        assert page.status == 200
        assert "You are signed out." in page.text
        assert "Sign Out" not in page.buttons


class TestNewTicket:
    async def test_form_has_title_price_and_submit(self, browser, fake_api):
        page = await browser.get("/tickets/new", cookies=fake_api.sign_in())

        assert page.status == 200
        assert page.labels == ["Title", "Price"]
        assert "Submit" in page.buttons
        form = form_posting_to(page, "/api/tickets")
        assert form["data-next"] == "/"
        assert "sign in" not in page.text

    async def test_signed_out_visitor_is_told_to_sign_in(self, browser):
        page = await browser.get("/tickets/new")

        assert page.status == 200
        assert "You need to sign in to sell tickets." in page.text
        assert ("sign in", "/auth/signin") in page.links


class TestShowTicket:
    async def test_ticket_shows_details_and_purchase_for_its_id(self, browser, fake_api):
        ticket = fake_api.add_ticket("Concert", 12.5)

        page = await browser.get(f"/tickets/{ticket['id']}", cookies=fake_api.sign_in())

        assert page.status == 200
        assert "Concert" in page.text
        assert "Price: $12.50" in page.text
        assert page.buttons == ["Sign Out", "Purchase"]  # the header's, then the page's
        form = form_posting_to(page, "/api/orders")
        assert form["data-next"] == "/orders/{id}"
        assert {"type": "hidden", "name": "ticketId", "value": ticket["id"]} in page.inputs()
        assert "Reserved" not in page.text

    async def test_reserved_ticket_is_marked_and_still_offers_purchase(self, browser, fake_api):
        ticket = fake_api.add_ticket("Concert", 10, order_id="0" * 24)

        page = await browser.get(f"/tickets/{ticket['id']}")

        assert page.status == 200
        assert "Reserved" in page.text
        assert page.buttons == ["Purchase"]

    async def test_unknown_ticket_renders_404_with_the_message(self, browser, fake_api):
        page = await browser.get(f"/tickets/{'a' * 24}", cookies=fake_api.sign_in())

        assert page.status == 404
        assert "Not Found" in page.text
        assert page.nav == SIGNED_IN_NAV
        assert "Purchase" not in page.buttons

    async def test_id_is_passed_to_the_api_as_one_escaped_segment(self, browser, fake_api):
        page = await browser.get("/tickets/a%3Fb%23c")

        assert page.status == 404
        # Unescaped, the API would have seen /api/tickets/a with a query string.
        assert "GET /api/tickets/a%3Fb%23c" in fake_api.seen_paths()

    async def test_dot_dot_id_is_404_without_calling_the_api_elsewhere(self, browser, fake_api):
        page = await browser.get("/tickets/%2E%2E")

        assert page.status == 404
        assert "Not Found" in page.text
        assert all(path == "GET /api/users/currentuser" for path in fake_api.seen_paths())


class TestOrderList:
    async def test_lists_my_orders_with_title_and_status_value(self, browser, fake_api):
        cookies = fake_api.sign_in()
        me = fake_api.user_of(cookies)["id"]
        paid = fake_api.add_order(me, title="Concert", price=20, status="complete")
        open_ = fake_api.add_order(me, title="Opera", price=5.5, status="created")
        fake_api.add_order(me, title="Ballet", status="cancelled")
        fake_api.add_order("someone-else", title="Not mine")

        page = await browser.get("/orders", cookies=cookies)

        assert page.status == 200
        assert "Concert $20.00 complete" in page.text
        assert "Opera $5.50 created" in page.text
        assert "Ballet $20.00 cancelled" in page.text
        assert "Not mine" not in page.text
        assert ("View", f"/orders/{paid['id']}") in page.links
        assert ("View", f"/orders/{open_['id']}") in page.links

    async def test_no_orders_says_so(self, browser, fake_api):
        page = await browser.get("/orders", cookies=fake_api.sign_in())

        assert page.status == 200
        assert "You have no orders yet." in page.text

    async def test_signed_out_renders_401_with_the_message(self, browser):
        page = await browser.get("/orders")

        assert page.status == 401
        assert "location" not in page.response.headers
        assert "Not authorized" in page.text
        assert page.nav == SIGNED_OUT_NAV
        assert ("sign in", "/auth/signin") in page.links


class TestShowOrder:
    async def test_payable_order_shows_ticket_countdown_and_pay_form(
        self, browser, fake_api, settings
    ):
        cookies = fake_api.sign_in()
        order = fake_api.add_order(
            fake_api.user_of(cookies)["id"],
            title="Concert",
            price=19.99,
            expires_in=timedelta(minutes=10, seconds=30),
        )

        page = await browser.get(f"/orders/{order['id']}", cookies=cookies)

        assert page.status == 200
        assert "Concert" in page.text
        assert "Price: $19.99" in page.text
        countdown = re.search(r"Time left to pay: (\d+):(\d\d)", page.text)
        assert countdown is not None
        seconds = int(countdown[1]) * 60 + int(countdown[2])
        assert 10 * 60 + 25 <= seconds <= 10 * 60 + 30
        assert page.buttons == ["Sign Out", "Pay"]  # the header's, then the page's
        pay = [form for form in page.forms() if "data-pay" in form]
        assert pay[0]["data-order-id"] == order["id"]
        assert pay[0]["data-stripe-key"] == settings.STRIPE_PUBLISHABLE_KEY
        assert page.scripts == ["/static/forms.js", settings.STRIPE_JS_URL, "/static/pay.js"]
        assert "This order is paid" not in page.text

    @pytest.mark.parametrize(
        ("status", "expires_in", "says"),
        [
            ("complete", timedelta(minutes=5), "This order is paid."),
            ("complete", timedelta(minutes=-5), "This order is paid."),
            ("created", timedelta(seconds=-1), "This order has expired."),
            ("cancelled", timedelta(minutes=-1), "This order has expired."),
            ("cancelled", timedelta(minutes=5), "This order was cancelled."),
        ],
    )
    async def test_order_that_cannot_be_paid_says_why_and_offers_no_pay(
        self, browser, fake_api, status, expires_in, says
    ):
        cookies = fake_api.sign_in()
        order = fake_api.add_order(
            fake_api.user_of(cookies)["id"], status=status, expires_in=expires_in
        )

        page = await browser.get(f"/orders/{order['id']}", cookies=cookies)

        assert page.status == 200
        assert says in page.text
        assert f"Status: {status}" in page.text
        assert "Pay" not in page.buttons
        assert "Time left to pay" not in page.text
        assert page.scripts == ["/static/forms.js"]  # no Stripe.js either

    async def test_someone_elses_order_renders_401_with_the_message(self, browser, fake_api):
        order = fake_api.add_order("someone-else")

        page = await browser.get(f"/orders/{order['id']}", cookies=fake_api.sign_in())

        assert page.status == 401
        assert "Not authorized" in page.text
        assert page.nav == SIGNED_IN_NAV
        assert "Pay" not in page.buttons

    async def test_unknown_order_renders_404_with_the_message(self, browser, fake_api):
        page = await browser.get(f"/orders/{'b' * 24}", cookies=fake_api.sign_in())

        assert page.status == 404
        assert "Not Found" in page.text
        assert "location" not in page.response.headers


class TestApiFailures:
    async def test_api_error_message_and_status_are_shown(self, browser, fake_api):
        fake_api.answer(
            "GET", "/api/tickets", 500, '{"errors":[{"message":"Something went wrong"}]}'
        )

        page = await browser.get("/", cookies=fake_api.sign_in())

        assert page.status == 500
        assert "Something went wrong" in page.text
        assert page.nav == SIGNED_IN_NAV

    async def test_gateway_error_page_becomes_a_clear_message(self, browser, fake_api):
        fake_api.answer("GET", "/api/tickets", 502, "<html>502 Bad Gateway</html>", "text/html")

        page = await browser.get("/")

        assert page.status == 502
        assert "The ticketing service is unavailable" in page.text
        assert "Bad Gateway" not in page.text

    async def test_answer_of_an_unexpected_shape_is_502(self, browser, fake_api):
        fake_api.answer("GET", "/api/tickets", 200, '{"not": "a list"}')

        page = await browser.get("/")

        assert page.status == 502
        assert "Unexpected answer from the ticketing service" in page.text

    async def test_failing_current_user_renders_the_error_with_a_bare_header(
        self, browser, fake_api
    ):
        fake_api.answer("GET", "/api/users/currentuser", 503, "", "text/plain")

        page = await browser.get("/")

        assert page.status == 503
        assert "The ticketing service is unavailable" in page.text
        assert page.nav == ["GitTix"]
