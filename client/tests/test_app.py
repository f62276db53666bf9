# Fixtures arrive by name and untyped, as the root config means tests to be (its
# `*.tests.*` override does not match the `test_x` module names mypy gives them here).
# mypy: disable-error-code="no-untyped-def"
"""The client as a service: health, readiness, its own errors, static files, settings."""

from __future__ import annotations

import httpx
import pytest

from client.config import Settings, get_settings


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


class TestHealth:
    async def test_healthz_answers_ok(self, browser):
        response = await browser.request("GET", "/healthz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_is_ready_when_the_gateway_answers(self, browser):
        response = await browser.request("GET", "/readyz")

        assert response.status_code == 200
        assert response.json()["checks"] == {"gateway": True}


class TestGatewayDown:
    @pytest.fixture
    def api_transport(self) -> httpx.AsyncBaseTransport:
        return httpx.MockTransport(refuse)

    async def test_readyz_is_503_naming_the_gateway(self, browser):
        response = await browser.request("GET", "/readyz")

        assert response.status_code == 503
        assert response.json() == {"errors": [{"message": "Not ready: gateway"}]}

    async def test_healthz_still_answers(self, browser):
        response = await browser.request("GET", "/healthz")

        assert response.status_code == 200

    async def test_page_renders_502_with_a_clear_message(self, browser):
        page = await browser.get("/")

        assert page.status == 502
        assert "The ticketing service is unavailable" in page.text
        assert page.nav == ["GitTix"]


class TestOwnErrors:
    async def test_unknown_page_is_an_html_404_with_the_header(self, browser, fake_api):
        page = await browser.get("/no/such/page", cookies=fake_api.sign_in())

        assert page.status == 404
        assert page.response.headers["content-type"].startswith("text/html")
        assert "Not Found" in page.text
        assert page.nav == ["GitTix", "Sell Tickets", "My Orders", "Sign Out"]

    async def test_unsupported_method_on_a_page_is_an_html_405(self, browser):
        response = await browser.request("POST", "/")

        assert response.status_code == 405
        assert "Method not allowed" in response.text

    async def test_api_path_reaching_the_client_answers_in_the_api_error_shape(self, browser):
        response = await browser.request("GET", "/api/tickets")

        assert response.status_code == 404
        assert response.json() == {"errors": [{"message": "Not Found"}]}

    async def test_trailing_slash_answers_like_the_page_without_redirect(self, browser):
        response = await browser.request("GET", "/orders/", cookies=None)

        assert response.status_code == 401
        assert "location" not in response.headers


class TestClientBug:
    @pytest.fixture
    def api_transport(self) -> httpx.AsyncBaseTransport:
        def explode(request: httpx.Request) -> httpx.Response:
            raise RuntimeError("a bug, not a network failure")

        return httpx.MockTransport(explode)

    async def test_unexpected_error_is_an_html_500_page(self, browser, caplog):
        page = await browser.get("/")

        assert page.status == 500
        assert page.response.headers["content-type"].startswith("text/html")
        assert "Something went wrong" in page.text
        assert "a bug, not a network failure" not in page.text
        assert "unhandled error on GET /" in caplog.text


class TestResponses:
    async def test_pages_are_private_and_carry_security_headers(self, browser):
        response = await browser.request("GET", "/")

        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "private, no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"

    @pytest.mark.parametrize(
        ("path", "content_type"),
        [
            ("/static/style.css", "text/css"),
            ("/static/forms.js", "text/javascript"),
            ("/static/pay.js", "text/javascript"),
        ],
    )
    async def test_static_files_are_served(self, browser, path, content_type):
        response = await browser.request("GET", path)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)
        assert len(response.content) > 500


class TestSettings:
    def test_missing_settings_refuse_to_start_naming_them(self, monkeypatch, capsys):
        for name in ("API_BASE_URL", "STRIPE_PUBLISHABLE_KEY", "STRIPE_JS_URL"):
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()

        with pytest.raises(SystemExit) as exit_:
            get_settings()

        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "missing required environment variable API_BASE_URL" in err
        assert "missing required environment variable STRIPE_PUBLISHABLE_KEY" in err

    def test_settings_come_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("API_BASE_URL", "http://gateway:80")
        monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_dev")
        get_settings.cache_clear()
        try:
            settings = get_settings()
        finally:
            get_settings.cache_clear()

        assert settings == Settings(
            API_BASE_URL="http://gateway:80",
            STRIPE_PUBLISHABLE_KEY="pk_test_dev",
            STRIPE_JS_URL="https://js.stripe.com/v3/",
        )
