"""The /cells page in a real browser, driven as a person would: keyboard on the controls."""

import re

import pytest

from tests.browser import screenshot, wait_rendered

pytestmark = pytest.mark.browser

FIGURES = ("gates", "state", "gradients", "carry")


def carry_gain_trace(page) -> list:
    """The carry-gain line of the figure last applied, as plain numbers."""
    return page.evaluate("""async () => {
        const cells = await import('/static/js/cells.js');  // the page's own module instance
        const figure = cells.latestResult().figures.carry;  // plain arrays (app/jsonsafe.py)
        return figure.data.find((t) => (t.name || '').startsWith('carry gain')).y;
    }""")


def test_page_loads_offline_and_draws_every_plot(page):
    page.goto(page.base_url + "/cells")
    wait_rendered(page)
    for name in FIGURES:
        assert page.locator(f"#fig-{name} .main-svg").count() >= 1, f"{name} not drawn"
    assert page.locator("#ctl-cell").input_value() == "lstm", "the page's default cell"
    assert page.locator("#status").get_attribute("data-state") == "done"
    symbols = page.locator("#checks .check .symbol").all_inner_texts()
    assert symbols and set(symbols) <= {"✓", "✗", "–"}
    assert page.locator("#checks [data-check='carry_path'] .symbol").inner_text() == "✓"
    assert page.locator("#error-box").is_hidden()
    assert page.locator(".figure-downloads button").count() == 2 * len(FIGURES)


def test_forget_bias_slider_by_keyboard_changes_the_data_and_the_url(page):
    page.goto(page.base_url + "/cells?seq_len=80")
    first = wait_rendered(page)
    before = carry_gain_trace(page)
    slider = page.locator("#ctl-forget_bias")
    slider.focus()
    for _ in range(6):  # 1.0 -> 4.0 in steps of 0.5
        page.keyboard.press("ArrowRight")
    assert page.locator("#out-forget_bias").inner_text() == "4"
    page.wait_for_url(re.compile(r"forget_bias=4(&|$)"))
    wait_rendered(page, after=first)
    after = carry_gain_trace(page)
    assert len(after) == len(before) == 80
    assert after[0] > before[0] * 1e3, "a larger forget bias keeps much more of the error"
    assert "seq_len=80" in page.url, "other settings stay in the URL"


def test_gru_url_restores_the_select_and_disables_the_forget_bias(page):
    page.goto(page.base_url + "/cells?cell=gru&seq_len=40")
    wait_rendered(page)
    assert page.locator("#ctl-cell").input_value() == "gru"
    assert page.locator("#ctl-forget_bias").is_disabled()
    assert page.locator("[data-for-cell='gru']").first.is_visible()
    assert page.locator("[data-for-cell='lstm']").first.is_hidden()
    names = page.evaluate("() => document.getElementById('fig-gates').data.map((t) => t.name)")
    assert "z mean over units" in names


def test_carousel_preset_passes_the_cec_check(page):
    page.goto(page.base_url + "/cells")
    first = wait_rendered(page)
    page.get_by_role("button", name="Constant error carousel").click()
    wait_rendered(page, after=first)
    assert "forget_bias=10" in page.url and "weight_scale=0" in page.url
    assert page.locator("#ctl-forget_bias").input_value() == "10"
    cec = page.locator("#checks [data-check='cec']")
    assert cec.get_attribute("data-status") == "pass"
    assert cec.locator(".symbol").inner_text() == "✓"
    assert page.get_by_role("button", name="Constant error carousel").get_attribute(
        "aria-pressed") == "true"
    screenshot(page, "cells")


def test_out_of_range_url_shows_the_422_message(page):
    page.goto(page.base_url + "/cells?seq_len=5000")
    page.locator("#error-box").wait_for(state="visible", timeout=20_000)
    assert "seq_len must be between 1 and 1000" in page.locator("#error-box").inner_text()
    assert page.locator("#status").get_attribute("data-state") == "error"
    # The browser logs the refused requests themselves; they are this test's premise.
    expected = [e for e in page.watch.errors if "status of 422" in e]
    assert expected, "the stream and the follow-up fetch were both refused with 422"
    for error in expected:
        page.watch.errors.remove(error)
