"""A page's calls to the API continue the browser request's trace (docs/OPERATIONS.md)."""

from __future__ import annotations

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class TestTraceContext:
    async def test_api_calls_of_a_page_carry_the_pages_trace(self, browser, fake_api):
        traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

        await browser.get("/", headers={"traceparent": traceparent})

        assert fake_api.seen
        sent = [seen.headers.get("traceparent", "") for seen in fake_api.seen]
        assert all(value.split("-")[1] == CALLER_TRACE for value in sent), sent
        # The parent is the client's own span for the page, not the browser's span.
        assert all(value.split("-")[2] != CALLER_SPAN for value in sent), sent

    async def test_a_page_without_a_trace_starts_one_for_its_calls(self, browser, fake_api):
        await browser.get("/")

        sent = {seen.headers.get("traceparent", "") for seen in fake_api.seen}
        trace_ids = {value.split("-")[1] for value in sent if value}
        assert len(trace_ids) == 1, sent
