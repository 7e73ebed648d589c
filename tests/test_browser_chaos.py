"""/chaos in a real browser: four plots drawn with no console error, the phase diagram filling
in row by row before the result, and projector mode at 1280 x 720."""

from __future__ import annotations

import pytest

from tests.browser import screenshot, wait_rendered

pytestmark = pytest.mark.browser

FIGURES = ("slope", "spectrum", "fan", "phase_input_scale")


def test_chaos_draws_four_plots_and_fills_the_phase_diagram_row_by_row(page):
    page.goto(page.base_url + "/chaos")
    wait_rendered(page)
    for name in FIGURES:
        page.wait_for_selector(f"#fig-{name}.js-plotly-plot .main-svg")
        assert page.evaluate(f"() => document.getElementById('fig-{name}').data.length") > 0
    assert page.locator("#error-box").is_hidden()
    status = page.locator("#status").inner_text()
    assert status.startswith("Done: λ₁ = −"), status  # the defaults are ordered
    assert "vanishes" in page.locator("#verdict").inner_text()
    assert page.locator("#checks li").count() == 3
    # the heatmap was drawn once per row as the partial events came, then by the result
    rows = page.evaluate("() => document.getElementById('fig-phase_input_scale').gflRows")
    assert rows == list(range(1, 10)), rows
    final = page.evaluate("() => document.getElementById('fig-phase_input_scale').layout.meta")
    assert final["rows_done"] == final["rows"] == 9
    heatmap = page.evaluate("() => document.getElementById('fig-phase_input_scale').data[0].z")
    assert all(v is not None for row in heatmap for v in row)
    assert page.locator("#block-phase_forget_bias").is_hidden()  # rnn: no forget gate
    screenshot(page, "chaos")


def test_an_lstm_gets_the_forget_bias_panel_and_a_slider_reruns(page):
    page.goto(page.base_url + "/chaos?cell=lstm&seq_len=60")
    first = wait_rendered(page)
    assert page.locator("#block-phase_forget_bias").is_visible()
    page.wait_for_selector("#fig-phase_forget_bias.js-plotly-plot .main-svg")
    slider = page.locator("#ctl-weight_scale")
    slider.focus()
    page.keyboard.press("ArrowRight")
    wait_rendered(page, after=first)
    assert "weight_scale=1.05" in page.url


def test_projector_mode_reads_at_1280_by_720(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(live_server.url + "/chaos?present=1")
    wait_rendered(page)
    assert page.evaluate("() => document.body.classList.contains('present')")
    font = page.evaluate(
        "() => document.getElementById('fig-slope')._fullLayout.font.size")
    assert font >= 20
    # the verdict is large and nothing spills sideways out of the page
    size = page.evaluate("() => parseFloat(getComputedStyle("
                         "document.getElementById('verdict')).fontSize)")
    assert size >= 24
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
    page.locator("#fig-phase_input_scale").scroll_into_view_if_needed()
    screenshot(page, "chaos-present")
    context.close()
    assert not errors, errors


def test_explore_names_the_largest_exponent_in_its_status_line(page):
    page.goto(page.base_url + "/explore?weight_scale=3&seq_len=100")
    wait_rendered(page)
    status = page.locator("#status").inner_text()
    assert "λ₁ = 0." in status and "explodes" in status, status
