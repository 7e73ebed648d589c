"""The training lab in a real browser: start, watch the curves grow, stop."""

import pytest

from tests.browser import STREAM_TAP, screenshot

pytestmark = pytest.mark.browser


def points(page, div):
    return page.evaluate(f"() => document.getElementById('{div}').data.map(t => t.x.length)")


def test_start_shows_growing_curves_and_stop_ends_the_run(page):
    page.add_init_script(STREAM_TAP)
    page.goto(page.base_url + "/train?lag=10&hidden_size=16&batch_size=16&steps=5000")
    assert page.locator("#ctl-lag").input_value() == "10"
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => document.getElementById('fig-loss').data?.every(t => t.x.length >= 3)",
        timeout=60000)
    first = points(page, "fig-loss")
    page.wait_for_function(
        f"() => document.getElementById('fig-loss').data"
        f".every((t, i) => t.x.length > {first}[i])",
        timeout=60000)
    assert page.locator("#fig-heatmap_lstm .main-svg").count() >= 1
    page.get_by_role("button", name="Stop").click()
    assert page.locator("#status").inner_text().startswith("Stopped")
    stopped = points(page, "fig-loss")
    # Stop aborts the stream, so no step can arrive after it; two animation frames let anything
    # already queued be drawn.
    page.wait_for_function("() => window.__streams.length > 0 "
                           "&& window.__streams.every((s) => s.ended)", timeout=5_000)
    page.evaluate("() => new Promise((done) => requestAnimationFrame("
                  "() => requestAnimationFrame(done)))")
    assert points(page, "fig-loss") == stopped, "no points after Stop"
    assert page.get_by_role("button", name="Start training").is_enabled()
    screenshot(page, "train")


def test_a_run_to_the_end_says_done_and_the_url_keeps_the_settings(page):
    page.goto(page.base_url + "/train?steps=3&lag=5&hidden_size=8&cells=lstm")
    assert page.locator("#cell-lstm").is_checked() and not page.locator("#cell-rnn").is_checked()
    page.locator("#ctl-seed").fill("4")
    page.locator("#ctl-seed").dispatch_event("input")
    assert "seed=4" in page.url
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Done')", timeout=60000)
    assert points(page, "fig-loss") == [3]
