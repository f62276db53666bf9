# mypy: disable-error-code="no-untyped-def"
"""The API is called with the configured host only; pages carry a Content-Security-Policy
that admits this site and Stripe.js's origin, and nothing inline."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from client.config import Settings

LOCAL_STRIPE_JS = "http://127.0.0.1:8420/js.stripe.com/v3/"
REAL_STRIPE_JS = "https://js.stripe.com/v3/"


@pytest.fixture
def settings(request) -> Settings:
    # Overrides conftest's: the Stripe.js URL and API host come from the test's parameters.
    stripe_js_url, api_host = getattr(request, "param", (LOCAL_STRIPE_JS, None))
    extra = {} if api_host is None else {"API_HOST": api_host}
    return Settings(
        API_BASE_URL="http://gateway.test",
        STRIPE_PUBLISHABLE_KEY="pk_test_csp",
        STRIPE_JS_URL=stripe_js_url,
        API_TIMEOUT_SECONDS=5,
        **extra,
    )


def policy(response) -> dict[str, list[str]]:
    header = response.headers["content-security-policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def payable_order(fake_api) -> tuple[dict[str, str], str]:
    cookies = fake_api.sign_in()
    order = fake_api.add_order(fake_api.user_of(cookies)["id"])
    return cookies, f"/orders/{order['id']}"


class TestHost:
    async def test_a_forged_host_is_replaced_by_the_configured_one(self, browser, fake_api):
        await browser.get("/", headers={"Host": "internal-admin.example"})

        assert fake_api.seen
        assert {seen.headers["host"] for seen in fake_api.seen} == {"ticketing.dev"}

    @pytest.mark.parametrize("settings", [(LOCAL_STRIPE_JS, "shop.example")], indirect=True)
    async def test_api_host_setting_is_the_host_of_every_api_call(self, browser, fake_api):
        cookies, path = payable_order(fake_api)

        await browser.get(path, cookies=cookies, headers={"Host": "ticketing.dev"})

        assert {seen.headers["host"] for seen in fake_api.seen} == {"shop.example"}


class TestContentSecurityPolicy:
    @pytest.mark.parametrize("path", ["/", "/auth/signin", "/no-such-page"])
    async def test_every_page_allows_only_this_site_and_nothing_inline(self, browser, path):
        response = await browser.request("GET", path)

        csp = policy(response)
        assert csp["default-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["form-action"] == ["'self'"]
        assert csp["base-uri"] == ["'none'"]
        for directive in ("script-src", "style-src", "connect-src"):
            assert "'self'" in csp[directive]
            assert not any("unsafe" in source for source in csp[directive]), csp[directive]

    async def test_order_page_scripts_all_come_from_allowed_origins(self, browser, fake_api):
        cookies, path = payable_order(fake_api)

        page = await browser.get(path, cookies=cookies)

        csp = policy(page.response)
        assert page.status == 200
        assert LOCAL_STRIPE_JS in page.scripts
        for src in page.scripts:
            parts = urlsplit(src)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"
            assert origin in csp["script-src"], src
        # Inline scripts would be refused: every <script> has a src.
        scripts = [attrs for tag, attrs in page.elements if tag == "script"]
        assert scripts and all("src" in attrs for attrs in scripts)
        # The stand-in's card frame and its API calls (tokens, 3-D Secure) are its origin.
        assert "http://127.0.0.1:8420" in csp["connect-src"]
        assert "http://127.0.0.1:8420" in csp["frame-src"]

    @pytest.mark.parametrize("settings", [(REAL_STRIPE_JS, None)], indirect=True)
    async def test_real_stripe_js_gets_its_api_and_3d_secure_frames(self, browser, fake_api):
        cookies, path = payable_order(fake_api)

        csp = policy((await browser.get(path, cookies=cookies)).response)

        assert "https://js.stripe.com" in csp["script-src"]
        assert "https://api.stripe.com" in csp["connect-src"]
        assert {"https://js.stripe.com", "https://hooks.stripe.com"} <= set(csp["frame-src"])
