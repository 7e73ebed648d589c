"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gradient_flow_lab.app.main import app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_server():
    from tests.browser import LiveServer

    with LiveServer() as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.browser import launch_browser

    with playwright_api.sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser page with a PageWatch at ``page.watch``; fails the test on console
    errors or requests to another host."""
    from tests.browser import PageWatch

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    new_page.watch = PageWatch(new_page)
    new_page.base_url = live_server.url
    yield new_page
    watch = new_page.watch
    context.close()
    assert not watch.errors, f"console errors: {watch.errors}"
    assert not watch.foreign_requests, f"requests left 127.0.0.1: {watch.foreign_requests}"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gold: compares with PyTorch autograd in float64 (needs torch)")
