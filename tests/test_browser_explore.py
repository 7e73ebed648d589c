"""/explore in a real browser, driven as a person would: keyboard on the controls, links opened."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gradient_flow_lab.app.presets import PRESETS, preset_url
from tests.browser import STREAM_TAP, screenshot, wait_rendered

pytestmark = pytest.mark.browser

FIGURES = ("grad_norms", "layer_heatmap", "hidden_heatmap", "eigenvalues", "contributions")


def grad_norm_y(page) -> list:
    return page.evaluate("() => document.getElementById('fig-grad_norms').data[0].y")


def test_explore_draws_every_plot_offline_and_follows_the_slider(page):
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    for name in FIGURES:
        page.wait_for_selector(f"#fig-{name}.js-plotly-plot .main-svg")
        assert page.evaluate(f"() => document.getElementById('fig-{name}').data.length") > 0
    assert page.locator("#status").inner_text().startswith("Done")
    assert page.locator("#overflow-marker").is_hidden()
    assert page.locator("#error-box").is_hidden()
    assert page.locator("#checks li").count() >= 4
    for status in ("pass", "na"):
        assert page.locator(f"#checks li.{status}").count() >= 1
    assert page.locator("#checks li.pass .symbol").first.inner_text() == "✓"
    assert page.locator("#ctl-forget_bias").is_disabled()  # rnn: no forget gate
    screenshot(page, "explore")

    before = grad_norm_y(page)
    run = page.locator("#status").get_attribute("data-run")
    slider = page.locator("#ctl-weight_scale")
    slider.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    assert page.locator("#out-weight_scale").inner_text() == "1.2"
    wait_rendered(page, after=run)
    assert grad_norm_y(page) != before
    assert "weight_scale=1.2" in page.url


def test_every_control_is_labelled_and_reachable(page):
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    names = page.eval_on_selector_all("[data-param]", "els => els.map(e => e.dataset.param)")
    from gradient_flow_lab.app.schemas import SimulationConfig

    # every simulation field, and the layer the hidden-state heatmap shows
    # every field has a control but `model`, an uploaded model's id that only a link sets
    fields = [name for name in SimulationConfig.model_fields if name != "model"]
    assert sorted(names) == sorted([*fields, "hidden_layer"])
    for name in names:
        control = page.locator(f"[data-param='{name}']")
        control_id = control.get_attribute("id")
        assert page.locator(f"label[for='{control_id}']").count() == 1, name


def hidden_heatmap_shown(page) -> dict:
    return page.evaluate("""() => {
      const plot = document.getElementById('fig-hidden_heatmap');
      const shown = plot._fullData.find((t) => t.visible === true);
      return { visible: plot._fullData.map((t) => t.visible === true),
               title: plot._fullLayout.title.text, z: shown.z };
    }""")


def test_the_hidden_state_heatmap_shows_the_chosen_layer_from_the_url_or_the_menu(page):
    page.goto(page.base_url + "/explore?num_layers=3&hidden_layer=2&seq_len=20")
    wait_rendered(page)
    select = page.get_by_label("Layer shown")
    assert select.locator("option").all_inner_texts() == ["layer 0", "layer 1", "layer 2"]
    assert select.input_value() == "2"
    shown = hidden_heatmap_shown(page)
    assert shown["visible"] == [False, False, True] and "layer 2" in shown["title"]

    run = page.locator("#status").get_attribute("data-run")
    select.select_option("0")
    page.wait_for_function("() => document.getElementById('fig-hidden_heatmap')"
                           "._fullData[0].visible === true")
    shown_first = hidden_heatmap_shown(page)
    assert shown_first["visible"] == [True, False, False] and "layer 0" in shown_first["title"]
    assert shown_first["z"] != shown["z"], "another layer, other numbers"
    assert "hidden_layer=0" in page.url  # the link says which layer, default or not
    assert page.locator("#status").get_attribute("data-run") == run, "no new simulation"

    # a network with fewer layers than asked shows its last one
    page.goto(page.base_url + "/explore?num_layers=2&hidden_layer=3")
    wait_rendered(page)
    assert hidden_heatmap_shown(page)["visible"] == [False, True]
    assert page.get_by_label("Layer shown").input_value() == "1"


def test_preset_url_restores_its_state_into_the_controls(page):
    edge = next(p for p in PRESETS if p["slug"] == "edge-of-chaos")
    page.goto(page.base_url + preset_url(edge))
    wait_rendered(page)
    assert page.locator("#ctl-cell").input_value() == "rnn"
    assert float(page.locator("#ctl-input_scale").input_value()) == edge["query"]["input_scale"]
    assert float(page.locator("#ctl-weight_scale").input_value()) == edge["query"]["weight_scale"]
    assert page.locator("#ctl-seq_len").input_value() == str(edge["query"]["seq_len"])
    assert page.locator("#out-seq_len").inner_text() == str(edge["query"]["seq_len"])
    assert not page.locator("#ctl-nonlinearity").is_disabled()
    assert page.locator("#ctl-forget_bias").is_disabled()
    assert page.locator("#preset-select").input_value() == "edge-of-chaos"
    # Only this page's presets are offered (the carousel and the saturated GRU open /cells).
    for other in ("lstm-carousel", "gru"):
        assert page.locator(f"#preset-select option[value='{other}']").count() == 0
    # Its claim check passes on the page, and the status says "near the edge", not "vanishes".
    assert page.locator("#checks li[data-check='edge'].pass").count() == 1
    status = page.locator("#status").inner_text()
    assert "near the edge of chaos" in status and "ordered" not in status

    # Choosing another preset from the menu rewrites controls and URL.
    page.select_option("#preset-select", "exploding-clipped")
    wait_rendered(page)
    assert page.locator("#ctl-cell").input_value() == "rnn"
    assert page.locator("#out-weight_scale").inner_text() == "2.5"
    assert re.search(r"clip=1(\.0)?(&|$)", page.url)
    assert "after clipping at 1" in page.locator("#status").inner_text()


def test_the_overflow_preset_shows_where_it_overflowed(page):
    preset = next(p for p in PRESETS if p["slug"] == "overflow")
    page.goto(page.base_url + preset_url(preset))
    wait_rendered(page)
    marker = page.locator("#overflow-marker")
    assert marker.is_visible()
    assert re.search(r"t = \d+", marker.inner_text())
    assert page.locator("#checks li.fail").count() >= 1
    assert page.locator("#checks li.fail .symbol").first.inner_text() == "✗"


def test_out_of_range_url_shows_the_servers_message(page):
    page.goto(page.base_url + "/explore?seq_len=5000")
    box = page.locator("#error-box")
    box.wait_for(state="visible", timeout=20_000)
    assert "seq_len" in box.inner_text()
    assert page.locator("#status").get_attribute("data-state") == "error"
    # Chromium logs the refused request itself; that one console line is the expected outcome.
    expected = [e for e in page.watch.errors if "422" in e]
    assert expected, "the 422 should have been requested"
    page.watch.errors[:] = [e for e in page.watch.errors if e not in expected]


def test_projector_mode_reapplies_the_plots_with_big_fonts(page):
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    font = "() => document.getElementById('fig-grad_norms').layout.font.size"
    small = page.evaluate(font)
    page.click("#present-toggle")
    page.wait_for_function(f"() => ({font})() > {small}")
    assert "present=1" in page.url
    # the picture once every plot has been resized to its box
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].every(
      (d) => d._fullLayout && Math.abs(d._fullLayout.width - d.clientWidth) < 2)""")
    screenshot(page, "explore-present")
    page.click("#present-toggle")
    page.wait_for_function(f"() => ({font})() === {small}")
    width = "() => document.getElementById('fig-grad_norms').data[0].line.width"
    assert page.evaluate(width) < 5, "projector line widths must not stick after toggling off"


def test_downloads_give_csv_json_and_an_offline_page(page):
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    holder = page.locator(".figure-downloads[data-figure='grad_norms']")
    with page.expect_download() as csv_download:
        holder.get_by_role("button", name=re.compile("CSV")).click()
    stem = "explore-grad_norms-rnn-tanh-T50-L1-scale1-seed0"  # page, plot, key settings
    assert csv_download.value.suggested_filename == f"{stem}.csv"
    csv_lines = Path(csv_download.value.path()).read_text().splitlines()
    assert csv_lines[0] == "# page=explore" and "# seed=0" in csv_lines
    csv_lines = [line for line in csv_lines if not line.startswith("# ")]
    assert csv_lines[0] == "trace,x,y,z"
    assert csv_lines[1].split(",")[1] == "0" and float(csv_lines[1].split(",")[2]) > 0
    assert len(csv_lines) >= 1 + 50  # a row per step of the default seq_len
    with page.expect_download() as json_download:
        holder.get_by_role("button", name=re.compile("JSON")).click()
    assert json_download.value.suggested_filename == f"{stem}.json"
    saved = json.loads(Path(json_download.value.path()).read_text())
    assert saved["config"]["seed"] == 0 and saved["page"] == "explore" and saved["data"]

    with page.expect_download() as html_download:
        page.click("#download-view")
    html = Path(html_download.value.path()).read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html and "fig-contributions" in html
    assert '"seq_len": 50' in html
    assert "src=\"http" not in html and "src='http" not in html

    # The saved page works on its own: open it and every plot is drawn, with no requests at all.
    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda r: requests.append(r.url) if r.url.startswith("http") else None)
    offline.set_content(html)
    offline.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length === 5", timeout=20_000)
    assert requests == []
    offline.close()


def test_every_plot_offers_png_and_svg_downloads(page):
    page.goto(page.base_url + "/explore")
    page.wait_for_function("() => document.getElementById('fig-grad_norms').data")
    figure = page.locator("#fig-grad_norms")
    figure.hover()
    assert figure.locator("[data-title='Download plot as a PNG']").count() == 1
    assert figure.locator("[data-title^='Share chart']").count() == 0, "no cloud upload button"
    svg_button = figure.locator("[data-title='Download plot as SVG']")
    assert svg_button.count() == 1
    with page.expect_download() as download:
        svg_button.click()
    assert download.value.suggested_filename.endswith(".svg")


def test_a_slow_older_run_never_overwrites_a_newer_one(page):
    # Every stream the page opens, and whether it got its result or was closed.
    page.add_init_script(STREAM_TAP)
    page.goto(page.base_url + "/explore?cell=lstm&hidden_size=200&seq_len=20")
    wait_rendered(page)
    # A long sequence (most of a second here), then at once a short one: the long run's result
    # comes back last, and must never be shown.
    page.evaluate("""() => {
      const slider = document.getElementById('ctl-seq_len');
      const move = (value) => { slider.value = value;
                                slider.dispatchEvent(new Event('input', { bubbles: true })); };
      move('1000');
      setTimeout(() => move('21'), 80);
    }""")
    page.wait_for_function("() => location.search.includes('seq_len=21')")
    wait_rendered(page)
    # The long run is over for the page once its stream is closed or its result is in; only
    # then could a stale result have been drawn.
    # (On a loaded machine the throttle may fold the long move into the short one: then no long
    # run was ever asked for, and nothing stale can arrive.)
    page.wait_for_function("""() => {
        const long = window.__streams.filter((s) => s.url.includes('seq_len=1000'));
        return long.every((s) => s.ended || s.events.some((e) => e.name === 'result'));
      }""", timeout=60_000)
    wait_rendered(page)
    lengths = page.evaluate("""() => ({
      grad_norms: document.getElementById('fig-grad_norms').data[0].x.length,
      layer_heatmap: document.getElementById('fig-layer_heatmap').data[0].z[0].length,
      hidden_heatmap: document.getElementById('fig-hidden_heatmap').data[0].z[0].length,
      contributions: document.getElementById('fig-contributions').data[0].x.length,
    })""")
    assert lengths == dict.fromkeys(lengths, 21), lengths
    assert page.locator("#ctl-seq_len").input_value() == "21"


def x_range(page) -> list:
    return page.evaluate("() => document.getElementById('fig-grad_norms')._fullLayout.xaxis.range")


def test_a_zoom_survives_the_next_update(page):
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    before = x_range(page)
    # Drag a zoom box across the middle of the gradient-norm plot, as a person would.
    box = page.locator("#fig-grad_norms .nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.3 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], y + 10, steps=5)
    page.mouse.move(box["x"] + 0.6 * box["width"], y + 20, steps=5)
    page.mouse.up()
    zoomed = x_range(page)
    assert zoomed != before and zoomed[1] - zoomed[0] < 0.5 * (before[1] - before[0])

    # Plotly.react updates the plot in place; newPlot would throw its SVG away and draw anew.
    page.evaluate("() => { document.querySelector('#fig-grad_norms .main-svg').gflKept = 1; }")
    run = page.locator("#status").get_attribute("data-run")
    slider = page.locator("#ctl-weight_scale")
    slider.focus()
    page.keyboard.press("ArrowRight")
    wait_rendered(page, after=run)
    assert x_range(page) == zoomed, "the new figure kept the reader's zoom"
    assert page.evaluate("() => document.querySelector('#fig-grad_norms .main-svg').gflKept"), \
        "the plot was updated in place (Plotly.react), not drawn anew"


def test_a_drag_sends_a_few_requests_not_one_per_step(page):
    opened = []
    page.on("request", lambda request: "/api/simulate/stream" in request.url
            and opened.append(request.url))
    page.goto(page.base_url + "/explore")
    wait_rendered(page)
    # Twenty slider steps 10 ms apart, as a quick drag makes them.
    opened.clear()
    page.evaluate("""() => new Promise((resolve) => {
      const slider = document.getElementById('ctl-weight_scale');
      let step = 0;
      const timer = setInterval(() => {
        step += 1;
        slider.value = String(1 + step / 20);
        slider.dispatchEvent(new Event('input', { bubbles: true }));
        if (step === 20) { clearInterval(timer); resolve(); }
      }, 10);
    })""")
    wait_rendered(page)
    assert 2 <= len(opened) <= 8, f"{len(opened)} requests for 20 steps"
    assert "weight_scale=2" in opened[-1], "the last request carries the last value"
    assert "weight_scale=2" in page.url


def test_a_long_run_draws_its_backward_sweep_before_the_figures_arrive(page):
    page.add_init_script("""
      window.__titles = [];
      document.addEventListener('DOMContentLoaded', () => {
        const react = window.Plotly.react;
        window.Plotly.react = function (element, data, layout) {
          if (element.id === 'fig-grad_norms') window.__titles.push(layout?.title?.text ?? '');
          return react.apply(this, arguments);
        };
      });
    """)
    # About the whole work budget: the server is still on the diagnostics when the sweep is in.
    page.goto(page.base_url + "/explore?cell=lstm&hidden_size=250&seq_len=1000")
    wait_rendered(page, timeout=60_000)
    titles = page.evaluate("() => window.__titles")
    assert titles[0] == "Backward sweep arriving…", titles
    assert titles[-1].startswith("Gradient norm"), titles
