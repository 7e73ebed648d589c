""""Download this view" on the other simulation pages: one HTML file that draws every plot
offline, with the settings it was made from."""

import json
import re
from pathlib import Path

import pytest

from tests.browser import wait_rendered

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("path,figures,setting", [
    ("/bptt?truncation=5", 5, '"truncation": 5'),  # with the per-step factor plot
    ("/cells?cell=gru", 4, '"cell": "gru"'),
    ("/compare?seq_len=30", 2, '"seq_len": 30'),
])
def test_a_saved_view_opens_offline_with_every_plot(page, path, figures, setting):
    page.goto(page.base_url + path)
    wait_rendered(page)
    assert_saved_view_opens_offline(page, figures, setting)


def assert_saved_view_opens_offline(page, figures, *expected_text):
    """Clicks "Download this view", opens the file in a fresh page with nothing to fetch, and
    waits for `figures` plots; the file must hold each of `expected_text`."""
    with page.expect_download() as saved:
        page.click("#download-view")
    html = Path(saved.value.path()).read_text(encoding="utf-8")
    for text in expected_text:
        assert text in html
    assert "src=\"http" not in html
    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda r: requests.append(r.url) if r.url.startswith("http") else None)
    offline.set_content(html)
    offline.wait_for_function(
        f"() => document.querySelectorAll('.js-plotly-plot').length === {figures}",
        timeout=20_000)
    assert requests == []
    return offline


def test_the_activations_view_is_saved_with_its_depth_and_caption(page):
    page.goto(page.base_url + "/activations?depth=7&x0=1.5")
    page.wait_for_function(
        "() => document.getElementById('activations').dataset.renderedDepth === '7'",
        timeout=30_000)
    caption = page.locator("#act-status").inner_text()
    assert caption.startswith("After 7 steps")
    offline = assert_saved_view_opens_offline(page, 4, '"depth": 7', '"x0": 1.5', caption)
    offline.close()


def test_the_training_lab_saves_its_curves_as_drawn(page):
    page.goto(page.base_url + "/train?steps=4&lag=5&hidden_size=8&cells=lstm,rnn")
    assert page.locator("#download-view").is_disabled()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
    # loss, accuracy, gradient norm and one heatmap per model
    offline = assert_saved_view_opens_offline(page, 5, '"steps": 4', "Done (")
    saved_points = offline.evaluate(
        "() => document.getElementById('fig-loss').data.map((t) => t.x.length)")
    assert saved_points == [4, 4], "the saved loss curves hold every step that was drawn"
    offline.close()

    holder = page.locator(".figure-downloads[data-figure='heatmap_rnn']")
    with page.expect_download() as csv:
        holder.get_by_role("button", name=re.compile("CSV")).click()
    rows = Path(csv.value.path()).read_text().splitlines()
    settings = [row for row in rows if row.startswith("# ")]
    assert "# seed=0" in settings and "# steps=4" in settings  # the run's settings and seed
    rows = rows[len(settings):]
    assert rows[0] == "trace,x,y,z"
    steps = page.evaluate("() => document.getElementById('fig-heatmap_rnn').data[0].x.length")
    assert steps >= 6  # lag 5: the symbol, five steps of waiting, the question
    assert len(rows) == 1 + 4 * steps, "a row per (update, step) of the rnn heatmap"
    with page.expect_download() as loss_json:
        page.locator(".figure-downloads[data-figure='loss']").get_by_role(
            "button", name=re.compile("JSON")).click()
    payload = json.loads(Path(loss_json.value.path()).read_text())
    assert payload["figure"] == "loss" and payload["config"]["steps"] == 4
    assert [len(trace["y"]) for trace in payload["data"]] == [4, 4]
