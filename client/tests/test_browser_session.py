# mypy: disable-error-code="no-untyped-def"
"""In Chromium through the whole stack: Sign Out is a button that ends the session for good,
and the Content-Security-Policy refuses nothing the pages (and Stripe.js) need."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ticketing_devstack.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pass1234"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}", pytrace=False)
    with Stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Visitor:
    """One browser (own cookies) that records every CSP refusal on its pages."""

    def __init__(self, browser: Browser, stack: Stack) -> None:
        self.context = browser.new_context(base_url=stack.gateway_url)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.refused: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                self.refused.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

    def sign_up(self) -> str:
        email = f"csp-{uuid.uuid4().hex[:8]}@example.com"
        self.page.goto("/auth/signup")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign Up").click()
        expect(self.page.get_by_role("button", name="Sign Out")).to_be_visible()
        return email


@pytest.fixture
def visitor(browser: Browser, stack: Stack) -> Iterator[Visitor]:
    made: list[Visitor] = []

    def make() -> Visitor:
        made.append(Visitor(browser, stack))
        return made[-1]

    yield make  # type: ignore[misc]
    for one in made:
        one.context.close()


def header_links(page: Page) -> list[str]:
    return [name.strip() for name in page.locator("header a, header button").all_inner_texts()]


def test_sign_out_button_ends_the_session_and_its_cookie_stays_dead(visitor):
    user = visitor()
    user.sign_up()
    cookies = user.context.cookies()

    user.page.get_by_role("button", name="Sign Out").click()

    expect(user.page.get_by_role("link", name="Sign In")).to_be_visible()
    assert header_links(user.page) == ["GitTix", "Sign Up", "Sign In"]
    # The token kept from before signing out, sent again by another browser: signed out.
    thief = visitor()
    thief.context.add_cookies(cookies)
    thief.page.goto("/")
    expect(thief.page.get_by_role("link", name="Sign In")).to_be_visible()
    assert user.refused == [] and thief.refused == []


def test_visiting_the_sign_out_page_signs_nobody_out(visitor):
    user = visitor()
    user.sign_up()

    user.page.goto("/auth/signout")
    user.page.goto("/")

    expect(user.page.get_by_role("button", name="Sign Out")).to_be_visible()


def test_pages_and_the_card_form_load_under_the_policy(visitor):
    seller = visitor()
    seller.sign_up()
    title = f"CSP show {uuid.uuid4().hex[:6]}"
    seller.page.get_by_role("link", name="Sell Tickets").click()
    seller.page.get_by_label("Title").fill(title)
    seller.page.get_by_label("Price").fill("12")
    seller.page.get_by_role("button", name="Submit").click()
    seller.page.wait_for_url(re.compile(r"/$"))

    buyer = visitor()
    buyer.sign_up()
    buyer.page.goto("/")
    buyer.page.get_by_role("row", name=re.compile(re.escape(title))).get_by_role(
        "link", name="View"
    ).click()
    buyer.page.get_by_role("button", name="Purchase").click()
    buyer.page.wait_for_url(re.compile(r"/orders/[0-9a-f]{24}$"))

    # Stripe.js (the stand-in) loaded and mounted its card fields; the countdown script runs.
    expect(
        buyer.page.get_by_role("group", name="Card").get_by_placeholder("number")
    ).to_be_visible()
    expect(buyer.page.get_by_text("Time left to pay:")).to_be_visible()
    assert seller.refused == [] and buyer.refused == []


def test_an_injected_inline_script_is_refused(visitor):
    # What a markup injection would try: the policy admits no inline script.
    user = visitor()
    user.page.goto("/")

    ran = user.page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
            return window.injected === true;
        }"""
    )

    assert ran is False
    expect_refusal = [text for text in user.refused if "script" in text]
    assert expect_refusal, user.refused
