"""The pages in a real browser (Debian's Chromium), against the stack `make dev` runs.

One stack for the module (free gateway and localstripe ports), one Chromium; every user is
a fresh browser context, so each has its own session cookie. Elements are found by their
visible names (labels and button texts, docs/SPEC.md §6). Every step leaves a screenshot in
`artifacts/browser/` at the repo root, named by test and step.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from ticketing_devstack.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
PASSWORD = "pass1234"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
THREE_D_SECURE_CARD = "4000002500003155"
ORDER_URL = re.compile(r"/orders/[0-9a-f]{24}$")
# Stripe waits up to a few seconds for the payment's event to reach the orders service.
PAID_TIMEOUT_MS = 15_000

WINDOW_SECONDS = 900  # make dev's default: 15 minutes to pay

NewUser = Callable[..., Page]

pytestmark = pytest.mark.timeout(240)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's "
            "chromium package (`make install` installs it with apt-get; "
            "`playwright install` cannot download here)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(chromium: Path) -> Iterator[Stack]:
    stack = Stack(expiration_window_seconds=WINDOW_SECONDS)
    with stack:
        yield stack
    left = stack.leftovers()
    assert left == [], f"the stack left {left}"


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_user(browser: Browser, stack: Stack) -> Iterator[NewUser]:
    """Open a fresh browser (own cookies) at the gateway; call it as `new_user()`."""
    contexts: list[BrowserContext] = []

    def open_page(**options: Any) -> Page:
        context = browser.new_context(base_url=stack.gateway_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


# -- steps -------------------------------------------------------------------------------


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def sign_up(page: Page, who: str) -> str:
    email = f"{who}-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/auth/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    # Signed in: the header changes.
    expect(page.get_by_role("button", name="Sign Out")).to_be_visible()
    expect(page.get_by_role("link", name="Sign Up")).to_have_count(0)
    return email


def sell_ticket(page: Page, title: str, price: str) -> None:
    page.get_by_role("link", name="Sell Tickets").click()
    page.wait_for_url("**/tickets/new")
    page.get_by_label("Title").fill(title)
    page.get_by_label("Price").fill(price)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(r"/$"))


def open_ticket(page: Page, title: str) -> None:
    page.goto("/")
    page.get_by_role("row", name=re.compile(re.escape(title))).get_by_role(
        "link", name="View"
    ).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def purchase(page: Page) -> None:
    page.get_by_role("button", name="Purchase").click()
    page.wait_for_url(ORDER_URL)


def fill_card(page: Page, number: str) -> None:
    # localstripe's Stripe.js stand-in mounts plain inputs named by their placeholders.
    card = page.get_by_role("group", name="Card")
    card.get_by_placeholder("number").fill(number)
    card.get_by_placeholder("exp_month").fill("12")
    card.get_by_placeholder("exp_year").fill("34")
    card.get_by_placeholder("cvc").fill("123")
    card.get_by_placeholder("postal_code").fill("42424")


def seller_with_ticket(new_user: NewUser, title: str, price: str = "20") -> Page:
    seller = new_user()
    sign_up(seller, "seller")
    sell_ticket(seller, title, price)
    return seller


def order_row_status(page: Page, title: str) -> str:
    row = page.get_by_role("row", name=re.compile(re.escape(title)))
    return row.locator(".status").inner_text()


# -- tests -------------------------------------------------------------------------------


class TestSelling:
    def test_seller_signs_up_and_the_sold_ticket_is_listed_with_its_price(
        self, new_user: NewUser
    ) -> None:
        seller = new_user()
        title = unique("Concert")

        seller.goto("/")
        expect(seller.get_by_role("link", name="Sign Up")).to_be_visible()
        expect(seller.get_by_role("link", name="Sell Tickets")).to_have_count(0)
        shot(seller, "01-sell-signed-out-home")
        sign_up(seller, "seller")
        shot(seller, "02-sell-signed-up")
        seller.get_by_role("link", name="Sell Tickets").click()
        seller.get_by_label("Title").fill(title)
        seller.get_by_label("Price").fill("12.5")
        seller.get_by_label("Title").focus()  # leaving Price formats it
        expect(seller.get_by_label("Price")).to_have_value("12.50")
        shot(seller, "03-sell-form-filled")
        seller.get_by_role("button", name="Submit").click()

        seller.wait_for_url(re.compile(r"/$"))
        row = seller.get_by_role("row", name=re.compile(re.escape(title)))
        expect(row).to_have_count(1)
        expect(row).to_contain_text("$12.50")
        shot(seller, "04-sell-ticket-listed")
        row.get_by_role("link", name="View").click()
        expect(seller.get_by_role("heading", name=title)).to_be_visible()
        expect(seller.get_by_text("Price: $12.50")).to_be_visible()
        expect(seller.get_by_role("button", name="Purchase")).to_be_visible()
        shot(seller, "05-sell-ticket-page")

    def test_ticket_without_a_title_shows_the_api_error_and_is_not_listed(
        self, new_user: NewUser
    ) -> None:
        seller = new_user()
        sign_up(seller, "seller")
        seller.get_by_role("link", name="Sell Tickets").click()
        seller.get_by_label("Price").fill("5")
        seller.get_by_role("button", name="Submit").click()

        expect(seller.get_by_role("alert")).to_contain_text("Title is required")
        expect(seller.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
        assert seller.url.endswith("/tickets/new")
        shot(seller, "06-sell-missing-title-error")


class TestBuying:
    def test_buyer_pays_with_the_test_card_and_my_orders_shows_complete(
        self, new_user: NewUser
    ) -> None:
        title = unique("Opera")
        seller_with_ticket(new_user, title, "30")
        # A phone-sized screen: the pages must work there too.
        buyer = new_user(viewport={"width": 390, "height": 844})
        sign_up(buyer, "buyer")

        open_ticket(buyer, title)
        expect(buyer.get_by_text("Price: $30.00")).to_be_visible()
        shot(buyer, "10-buy-ticket-page")
        purchase(buyer)
        expect(buyer.get_by_role("heading", name=title)).to_be_visible()
        expect(buyer.locator(".status")).to_have_text("created")
        countdown = buyer.locator("[data-countdown]")
        first = countdown.inner_text()
        expect(countdown).not_to_have_text(first, timeout=3_000)  # it counts down
        assert re.fullmatch(r"1[45]:\d\d", first), first  # 15 minutes to pay
        fill_card(buyer, GOOD_CARD)
        shot(buyer, "11-buy-order-card-filled")
        buyer.get_by_role("button", name="Pay").click()

        buyer.wait_for_url(re.compile(r"/orders$"), timeout=PAID_TIMEOUT_MS)
        expect(buyer.get_by_role("heading", name="My orders")).to_be_visible()
        assert order_row_status(buyer, title) == "complete"
        shot(buyer, "12-buy-my-orders-complete")
        buyer.get_by_role("row", name=re.compile(re.escape(title))).get_by_role(
            "link", name="View"
        ).click()
        expect(buyer.get_by_text("This order is paid.")).to_be_visible()
        expect(buyer.get_by_role("button", name="Pay")).to_have_count(0)
        shot(buyer, "13-buy-paid-order-page")

    def test_declined_card_shows_stripes_message_and_the_order_stays_payable(
        self, new_user: NewUser
    ) -> None:
        title = unique("Ballet")
        seller_with_ticket(new_user, title)
        buyer = new_user()
        sign_up(buyer, "buyer")
        open_ticket(buyer, title)
        purchase(buyer)
        order_url = buyer.url

        fill_card(buyer, DECLINED_CARD)
        buyer.get_by_role("button", name="Pay").click()

        expect(buyer.get_by_role("alert")).to_contain_text("Your card was declined.")
        expect(buyer.get_by_role("button", name="Pay")).to_be_enabled()
        assert buyer.url == order_url
        shot(buyer, "20-decline-message")
        # Still payable as far as the server knows: after a reload Pay is offered again,
        # and the good card goes through.
        buyer.reload()
        expect(buyer.locator(".status")).to_have_text("created")
        expect(buyer.get_by_role("button", name="Pay")).to_be_visible()
        shot(buyer, "21-decline-order-still-payable")
        fill_card(buyer, GOOD_CARD)
        buyer.get_by_role("button", name="Pay").click()
        buyer.wait_for_url(re.compile(r"/orders$"), timeout=PAID_TIMEOUT_MS)
        assert order_row_status(buyer, title) == "complete"
        shot(buyer, "22-decline-then-paid")

    def test_buyer_pays_with_a_3d_secure_card_through_authentication_to_complete(
        self, new_user: NewUser
    ) -> None:
        title = unique("Recital")
        seller_with_ticket(new_user, title, "25")
        buyer = new_user()
        sign_up(buyer, "buyer")
        open_ticket(buyer, title)
        purchase(buyer)
        fill_card(buyer, THREE_D_SECURE_CARD)

        buyer.get_by_role("button", name="Pay").click()
        # The bank's step (localstripe's stand-in shows it in the page).
        authenticate = buyer.get_by_role("button", name="Complete authentication")
        expect(authenticate).to_be_visible()
        shot(buyer, "40-3ds-authentication-step")
        authenticate.click()

        buyer.wait_for_url(re.compile(r"/orders$"), timeout=PAID_TIMEOUT_MS)
        assert order_row_status(buyer, title) == "complete"
        shot(buyer, "41-3ds-my-orders-complete")

    def test_failed_authentication_says_so_and_the_order_stays_payable(
        self, new_user: NewUser
    ) -> None:
        title = unique("Quartet")
        seller_with_ticket(new_user, title)
        buyer = new_user()
        sign_up(buyer, "buyer")
        open_ticket(buyer, title)
        purchase(buyer)
        order_url = buyer.url
        fill_card(buyer, THREE_D_SECURE_CARD)

        buyer.get_by_role("button", name="Pay").click()
        buyer.get_by_role("button", name="Fail authentication").click()

        expect(buyer.get_by_role("alert")).to_contain_text("Card authentication failed")
        expect(buyer.get_by_role("button", name="Pay")).to_be_enabled()
        assert buyer.url == order_url
        shot(buyer, "42-3ds-failed-message")
        buyer.reload()
        expect(buyer.locator(".status")).to_have_text("created")
        fill_card(buyer, GOOD_CARD)
        buyer.get_by_role("button", name="Pay").click()
        buyer.wait_for_url(re.compile(r"/orders$"), timeout=PAID_TIMEOUT_MS)
        assert order_row_status(buyer, title) == "complete"

    def test_second_buyer_of_a_reserved_ticket_sees_the_error_and_stays_on_the_ticket(
        self, new_user: NewUser
    ) -> None:
        title = unique("Match")
        seller_with_ticket(new_user, title)
        first = new_user()
        sign_up(first, "first")
        second = new_user()
        sign_up(second, "second")
        # Both open the ticket while it is on sale; the first buyer is quicker.
        open_ticket(second, title)
        ticket_url = second.url
        expect(second.get_by_text("Reserved", exact=True)).to_have_count(0)
        open_ticket(first, title)
        purchase(first)

        second.get_by_role("button", name="Purchase").click()

        expect(second.get_by_role("alert")).to_contain_text("Ticket is already reserved")
        assert second.url == ticket_url
        shot(second, "30-reserved-second-buyer-error")
        second.reload()
        expect(second.get_by_text("Reserved", exact=True)).to_be_visible()
        shot(second, "31-reserved-ticket-page-after-reload")
        # A reserved ticket is no longer on sale: off the list, and not among the orders.
        second.get_by_role("link", name="GitTix").click()
        expect(second.get_by_role("heading", name="Tickets")).to_be_visible()
        expect(second.get_by_role("row", name=re.compile(re.escape(title)))).to_have_count(0)
        second.get_by_role("link", name="My Orders").click()
        expect(second.get_by_text("You have no orders yet.")).to_be_visible()
        shot(second, "32-reserved-second-buyer-no-orders")
