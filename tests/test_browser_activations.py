"""The activations page in a real browser, used as a student would: sliders, keyboard, links."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import screenshot

pytestmark = pytest.mark.browser

FIGURES = ("curves", "iterates", "chain", "spread")


def wait_for_render(page, depth: int) -> None:
    page.wait_for_function(
        "depth => document.getElementById('activations').dataset.renderedDepth === String(depth)",
        arg=depth, timeout=15_000)


def plotted(page, name: str) -> list[dict]:
    """The traces Plotly has drawn in #fig-<name>: [{name, x, y}]."""
    return page.evaluate(
        """name => (document.getElementById(`fig-${name}`).data || [])
             .map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)}))""", name)


def test_page_draws_every_plot_and_the_depth_slider_drives_them(page):
    page.goto(page.base_url + "/activations")
    wait_for_render(page, 10)
    for name in FIGURES:
        assert page.locator(f"#fig-{name} .main-svg").count() >= 1, f"#fig-{name} not drawn"
        assert plotted(page, name), f"#fig-{name} has no traces"
    assert page.locator("#act-error").is_hidden()
    sigmoid_row = page.locator("#act-summary tr[data-function='sigmoid']")
    assert sigmoid_row.locator("[data-field='grad_max']").inner_text() == "0.25"
    assert page.locator("#act-summary tr[data-function='tanh'] [data-field='grad_max']"
                        ).inner_text() == "1"

    before = plotted(page, "chain")
    assert len(before[0]["x"]) == 11  # k = 0..10

    slider = page.get_by_label("Depth n (how many times f is applied)")
    slider.focus()
    page.keyboard.press("ArrowRight")
    expect_output = page.locator("output[for='ctl-depth']")
    assert expect_output.inner_text() == "11"
    page.wait_for_function("() => new URL(location.href).searchParams.get('depth') === '11'")
    wait_for_render(page, 11)

    after = plotted(page, "chain")
    assert len(after[0]["x"]) == 12
    assert after != before
    iterates = {t["name"]: t["y"] for t in plotted(page, "iterates")}
    assert "sigmoidⁿ(x), n = 11" in iterates

    screenshot(page, "activations")


def test_a_shared_link_restores_the_sliders(page):
    page.goto(page.base_url + "/activations?depth=30&x0=-1.5")
    wait_for_render(page, 30)
    assert page.locator("#ctl-depth").input_value() == "30"
    assert page.locator("output[for='ctl-depth']").inner_text() == "30"
    assert page.locator("#ctl-x0").input_value() == "-1.5"
    chain = plotted(page, "chain")
    assert len(chain[0]["x"]) == 31
    assert "-1.5" in page.locator("#act-summary-caption").inner_text()


def test_out_of_range_link_is_clamped_to_the_slider(page):
    page.goto(page.base_url + "/activations?depth=80")
    wait_for_render(page, 50)
    assert page.locator("#ctl-depth").input_value() == "50"
    assert "depth=50" in page.url


def test_csv_download_has_a_row_per_point(page):
    page.goto(page.base_url + "/activations?depth=5")
    wait_for_render(page, 5)
    with page.expect_download() as info:
        page.locator("button[data-download='csv'][data-figure='chain']").click()
    assert info.value.suggested_filename == "activations-chain-n5-x0_0.5.csv"
    text = Path(info.value.path()).read_text(encoding="utf-8").splitlines()
    settings = [line for line in text if line.startswith("# ")]
    assert "# depth=5" in settings and "# x0=0.5" in settings  # the settings it was made with
    lines = text[len(settings):]
    assert lines[0] == "trace,x,y,z"
    assert len(lines) == 1 + 4 * 6  # 4 traces, k = 0..5
    with page.expect_download() as info:
        page.locator("button[data-download='json'][data-figure='spread']").click()
    assert '"data"' in Path(info.value.path()).read_text(encoding="utf-8")
