"""Lecture-ready pages, as a lecturer projecting at 1280 x 720 would meet them: the main plot and
a control that moves it on the first screen, projector mode restyling every plot on every page,
and captions that say what the numbers show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import drawn, wait_rendered

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 720}

# page -> (its main plot, a control that moves it)
MAIN = {
    "explore": ("#fig-grad_norms", "#ctl-weight_scale"),
    "activations": ("#fig-chain", "#ctl-depth"),
    "bptt": ("#fig-unrolled", "#step-slider"),
    "cells": ("#fig-gradients", "#ctl-forget_bias"),
    "compare": ("#fig-grad_norms", "#ctl-weight_scale"),
    "chaos": ("#fig-slope", "#ctl-weight_scale"),
    "train": ("#fig-accuracy", "#start"),
}


@pytest.fixture
def projector(page):
    page.set_viewport_size(VIEWPORT)
    return page


@pytest.mark.parametrize("name", list(MAIN))
def test_main_plot_and_its_control_share_the_first_screen(projector, name):
    page = projector
    page.goto(f"{page.base_url}/{name}?present=1")
    drawn(page, name)
    plot_selector, control_selector = MAIN[name]
    page.wait_for_timeout(200)  # the fitted height applied
    plot = page.locator(plot_selector).bounding_box()
    control = page.locator(control_selector).bounding_box()
    assert plot["y"] >= 0 and plot["y"] + plot["height"] <= VIEWPORT["height"] + 0.5, plot
    assert plot["height"] >= 250, plot
    assert 0 <= control["y"] and control["y"] + control["height"] <= VIEWPORT["height"], control
    beside = control["x"] + control["width"] <= plot["x"]
    above = control["y"] + control["height"] <= plot["y"]
    assert beside or above, "the control sits beside or above the plot, never under it"
    header = page.locator(".site-header").bounding_box()
    assert header["height"] < 60, "the header stays one line"
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


# Each nav link's box, the part of the nav that shows (it scrolls sideways when too narrow, which
# would hide the last links) and where the projector button starts.
NAV_BOXES = """() => {
  const box = (e) => e.getBoundingClientRect();
  const nav = document.querySelector('.site-header nav');
  return { links: [...nav.querySelectorAll('a')].map((a) => [a.textContent.trim(), box(a).left,
                                                               box(a).right, box(a).top]),
           nav: [box(nav).left, box(nav).right],
           toggle: box(document.getElementById('present-toggle')).left };
}"""


@pytest.mark.parametrize("query", ["", "?present=1"])
def test_every_nav_link_is_fully_visible_on_one_header_line(projector, query):
    page = projector
    page.goto(f"{page.base_url}/chaos{query}")
    boxes = page.evaluate(NAV_BOXES)
    assert len(boxes["links"]) == 10
    nav_left, nav_right = boxes["nav"]
    assert nav_right <= boxes["toggle"] and boxes["toggle"] < VIEWPORT["width"]
    for label, left, right, _ in boxes["links"]:
        assert nav_left <= left and right <= nav_right <= VIEWPORT["width"], (label, boxes)
    assert len({round(top) for *_, top in boxes["links"]}) == 1, "one line"
    assert page.locator(".site-header").bounding_box()["height"] < 60


def test_home_shows_the_page_cards_on_the_first_screen(projector):
    page = projector
    page.goto(f"{page.base_url}/?present=1")
    card = page.locator(".card").first.bounding_box()
    assert card["y"] + 40 < VIEWPORT["height"], card


# The font of the heading, the axis title, the legend and every annotation of a plot.
FONTS = """(selector) => {
  const d = document.querySelector(selector);
  const l = d._fullLayout;
  return { body: l.font.size, title: l.title.font.size,
           legend: l.legend ? l.legend.font.size : null,
           annotations: (l.annotations || []).map((a) => a.font.size),
           width: d.data.map((t) => (t.line ? t.line.width : null)) };
}"""


@pytest.mark.parametrize("name", list(MAIN))
def test_projector_mode_restyles_every_plot(projector, name):
    page = projector
    page.goto(f"{page.base_url}/{name}")
    drawn(page, name)
    plot = MAIN[name][0]
    before = page.evaluate(FONTS, plot)
    page.click("#present-toggle")
    grown = f"(s) => document.querySelector(s)._fullLayout.font.size > {before['body']}"
    page.wait_for_function(grown,
                           arg=plot)
    after = page.evaluate(FONTS, plot)
    assert after["title"] > before["title"]
    if before["legend"] is not None:
        assert after["legend"] > before["legend"]
    assert all(a > b for a, b in zip(after["annotations"], before["annotations"], strict=True))
    # every other plot of the page too
    sizes = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
      .filter((d) => d._fullLayout).map((d) => d._fullLayout.font.size)""")
    assert sizes and min(sizes) >= 18, sizes
    page.click("#present-toggle")
    restored = f"(s) => document.querySelector(s)._fullLayout.font.size === {before['body']}"
    page.wait_for_function(restored, arg=plot)


@pytest.mark.parametrize("name", ["cells", "explore", "bptt", "chaos"])
def test_projector_plot_titles_stay_inside_their_plots(projector, name):
    page = projector
    page.goto(f"{page.base_url}/{name}?present=1")
    drawn(page, name)
    overflow = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
      .filter((plot) => plot.offsetParent !== null)
      .flatMap((plot) => [...plot.querySelectorAll('.gtitle')].map((title) => ({
        text: title.textContent,
        over: title.getBoundingClientRect().right - plot.getBoundingClientRect().right})))
      .filter((title) => title.over > 1)""")
    assert overflow == [], overflow


def test_projector_band_edges_stay_thinner_than_the_main_line(projector):
    """A thin guide or band edge grows less than a main line (never thicker than it)."""
    page = projector
    page.goto(f"{page.base_url}/activations?present=1")
    drawn(page, "activations")
    widths = page.evaluate("""() => document.getElementById('fig-iterates').data
      .filter((t) => t.line).map((t) => [t.name, t.line.width])""")
    faint = [w for n, w in widths if n == "smaller n"]
    main = [w for n, w in widths if n.startswith(("sigmoidⁿ", "tanhⁿ"))]
    assert faint and main and max(faint) < min(main), widths


def test_explore_captions_tell_the_truth(page):
    page.goto(page.base_url + "/explore?cell=rnn&nonlinearity=relu")
    wait_rendered(page)
    caption = page.locator("#h-grad_norms ~ .explain").inner_text()
    assert "T−1−t" in caption, caption
    status = page.locator("#status").inner_text()
    # every norm named by what it is a norm of; the step-0 sentence in words first
    assert "‖∂loss/∂θ‖ (all weights)" in status and "h_T " not in status, status
    assert "the gradient at step 0 is" in status, status
    relu = page.locator("[data-for-nonlinearity='relu']")
    squashing = page.locator("[data-for-nonlinearity='squashing']")
    assert relu.is_visible() and not squashing.is_visible()
    page.select_option("#ctl-nonlinearity", "tanh")
    squashing.wait_for(state="visible")
    assert not relu.is_visible()


def test_home_and_bptt_and_train_texts_match_the_numbers(page):
    page.goto(page.base_url + "/")
    text = page.locator("main").inner_text()
    assert "a little below one shrinks the signal to almost nothing" not in text
    assert "0.9" in text and "0.005" in text and "0.08" in text
    assert "vanilla RNN, an LSTM and a GRU: their equations" not in text
    page.goto(page.base_url + "/bptt")
    lede = " ".join(page.locator(".about .lede").text_content().split())
    assert "nothing further back than k steps can be learned" not in lede
    assert "forward state still carries" in lede
    page.goto(page.base_url + "/train")
    lede = " ".join(page.locator(".about .lede").text_content().split())
    assert "nothing happens" not in lede and "noise" in lede and "10" in lede
    assert page.locator("footer a[href='/docs']").count() == 1


def test_bptt_steps_back_one_step_at_a_time_with_its_factor(page):
    page.goto(page.base_url + "/bptt?seq_len=20")
    wait_rendered(page)
    assert page.locator("#step-slider").get_attribute("max") == "19"
    page.click("#step-earlier")
    readout = page.locator("#step-readout").inner_text()
    assert readout.startswith("t = 18")
    match = re.search(r"‖J_19‖ = \S+ = ([0-9.e+-]+)", readout)
    assert match, readout
    factors = page.evaluate("() => document.getElementById('fig-factors').data[0]")
    assert float(match.group(1)) == pytest.approx(factors["y"][-1] if "customdata" not in factors
                                                  else factors["customdata"][-1][1], rel=1e-2)
    page.click("#step-earlier")
    assert page.locator("#step-readout").inner_text().startswith("t = 17")
    assert page.evaluate("""() => document.getElementById('fig-unrolled').layout.shapes
      .some((s) => s.name === 'step')""")


def test_downloads_carry_their_settings_and_seed(page):
    page.goto(page.base_url + "/compare?seed=7&seq_len=30")
    wait_rendered(page)
    holder = page.locator(".figure-downloads[data-figure='grad_norms']")
    with page.expect_download() as csv_download:
        holder.get_by_role("button", name=re.compile("CSV")).click()
    name = csv_download.value.suggested_filename
    assert name.startswith("compare-grad_norms-") and "T30" in name and "seed7" in name, name
    lines = Path(csv_download.value.path()).read_text().splitlines()
    assert lines[0] == "# page=compare" and "# seed=7" in lines and "# seq_len=30" in lines
    assert "trace,x,y,z" in lines


def test_training_lab_reads_from_the_back_row(page):
    page.goto(page.base_url + "/train?steps=30&lag=5&hidden_size=8&cells=lstm,rnn")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
    lines = page.locator("#model-status li").all_inner_texts()
    assert len(lines) == 2, lines
    for line in lines:
        pattern = r"(LSTM|RNN)( learned at step \d+, \d+ s|: \d+% after \d+ steps, \d+(\.\d)? s)"
        assert re.fullmatch(pattern, line), line
    # the log axes label whole values: "0.2", never a bare "2" under "1" meaning 0.2
    for name in ("loss", "grad_norm"):
        ticks = page.evaluate(f"""() => {{ const a = document.getElementById('fig-{name}')
          ._fullLayout.yaxis; return a._vals.map((v) => [v.x, v.text]); }}""")
        assert ticks, name
        assert page.evaluate(f"document.getElementById('fig-{name}').layout.yaxis.tickmode")\
            == "array", "the page sets whole-value labels itself"
        for log_value, text in ticks:
            if "10" not in text:  # a plain number must be the tick's own value
                assert float(text) == pytest.approx(10 ** log_value, rel=1e-6), (name, ticks)
    # over one to three decades (where Plotly writes bare digits) every label is a whole value
    labels = page.evaluate("""async () => {
      const { logTicks } = await import('/static/js/train.js');
      return [logTicks(-1, 1), logTicks(-2, 0), logTicks(-9, 2)]; }""")
    for ticks in labels:
        for value, text in zip(ticks["values"], ticks["texts"], strict=True):
            if "10" not in text:
                assert float(text) == pytest.approx(value), ticks
    assert labels[0]["texts"][:4] == ["0.1", "0.2", "0.5", "1"]
    # smoothing is on by default; off shows each step as measured
    loss = "() => document.getElementById('fig-loss').data[0].y.slice()"
    smoothed = page.evaluate(loss)
    assert page.locator("#view-smoothing").input_value() == "20"
    page.select_option("#view-smoothing", "0")
    page.wait_for_function(f"() => ({loss})()[5] !== {smoothed[5]}")
    raw = page.evaluate(loss)
    assert raw[0] == smoothed[0] and len(raw) == len(smoothed) == 30
    assert max(abs(a - b) for a, b in zip(raw, smoothed, strict=True)) > 0
    # per-row heatmap scaling: each row's largest value becomes 0
    page.check("#view-row-scale")
    page.wait_for_function("""() => document.getElementById('fig-heatmap_rnn').data[0].z
      .every((row) => Math.abs(Math.max(...row.filter((v) => v !== null))) < 1e-9)""")


def test_projector_keeps_the_gate_bands_edges_thinner_than_their_means(projector):
    page = projector
    page.goto(f"{page.base_url}/cells?present=1")
    drawn(page, "cells")
    widths = page.evaluate("""() => document.getElementById('fig-gates').data
      .filter((t) => t.line).map((t) => [t.name, t.line.width])""")
    edges = [w for n, w in widths if n.endswith((" max", " min"))]
    means = [w for n, w in widths if n.endswith("mean over units")]
    assert edges and means and max(edges) < min(means), widths
