"""The home page in a real browser."""

import pytest

from tests.browser import screenshot

pytestmark = pytest.mark.browser


def test_home_page_loads_offline_with_a_card_per_page(page):
    page.goto(page.base_url + "/")
    for path in ("/explore", "/activations", "/bptt", "/cells", "/compare", "/train"):
        assert page.locator(f"main a[href^='{path}']").count() >= 1, f"no card links to {path}"
    screenshot(page, "home")
