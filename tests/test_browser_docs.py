"""The API docs work offline: Swagger UI comes from an installed package, not a CDN."""

import pytest

pytestmark = pytest.mark.browser


def test_api_docs_render_offline(page):
    page.goto(page.base_url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30000)  # one per operation
    assert "/api/simulate/stream" in page.content()
