"""Lesson mode in a real browser, driven as a lecturer drives it: arrow keys and a clicker's
PageDown, a key to reveal, a slider moved during a step, the notes column and the handout."""

from __future__ import annotations

import io
import json
import re

import pytest

from gradient_flow_lab.app.lesson import lesson
from tests.browser import screenshot

pytestmark = pytest.mark.browser

STEPS = lesson().steps

# The step's figures are all drawn for its latest run (static/js/lesson.js sets data-rendered).
RENDERED = """([n, after]) => {
  const s = document.getElementById('step-' + n);
  return s && !s.hidden && s.dataset.rendered !== undefined
    && s.dataset.rendered === s.dataset.run && Number(s.dataset.rendered) > after;
}"""


def wait_step(page, n: int, after: int = 0) -> int:
    page.wait_for_function(RENDERED, arg=[n, after], timeout=30_000)
    return int(page.locator(f"#step-{n}").get_attribute("data-rendered"))


def traces(page, n: int, name: str) -> list[dict]:
    return page.evaluate(
        """([n, name]) => (document.getElementById(`fig-s${n}-${name}`).data || [])
             .map(t => ({x: t.x ? Array.from(t.x) : null, y: t.y ? Array.from(t.y) : null,
                         z: t.z ? t.z.length : null}))""", [n, name])


def visible_steps(page) -> list[int]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.lesson-step'))
        .filter(s => !s.hidden).map(s => Number(s.dataset.step))""")


def assert_step_shown(page, n: int) -> None:
    step = STEPS[n - 1]
    assert page.url.split("?")[0].endswith(f"/lesson/{n}"), page.url
    assert visible_steps(page) == [n]
    section = page.locator(f"#step-{n}")
    # the maths is MathML, rendered by the browser itself
    assert section.locator("math").count() == len(step.equations)
    assert section.locator("math").first.is_visible()
    # the figure was drawn from a run of the step's preset
    config = json.loads(section.get_attribute("data-config"))
    for name, value in step.preset.items():
        assert config[name] == value, (n, name, config[name], value)
    for name in step.figures:
        drawn = traces(page, n, name)
        assert drawn, f"step {n}: #fig-s{n}-{name} has no traces"
        assert section.locator(f"#fig-s{n}-{name} .main-svg").first.is_visible()
    if "seq_len" in step.preset and "grad_norms" in step.figures:
        xs = [x for trace in traces(page, n, "grad_norms") if trace["x"] for x in trace["x"]]
        assert max(xs) == step.preset["seq_len"] - 1, f"step {n}: x runs to {max(xs)}"
    # its paper check, green
    check = section.locator(f".step-check li[data-check='{step.check}']")
    assert check.count() == 1 and check.is_visible(), f"step {n}: check {step.check} not shown"
    assert "pass" in check.get_attribute("class"), check.inner_text()
    # its controls, and only its own (ids are unique on the page)
    for name in step.controls:
        assert page.locator(f"#ctl-{name}").count() == 1
        assert section.locator(f"#ctl-{name}").is_visible()
    assert section.locator(".open-link").is_visible()


def assert_step_shown_at_start(page) -> None:
    """/lesson itself is step 1 (its address stays /lesson until the first move)."""
    section = page.locator("#step-1")
    assert section.locator("math").count() == len(STEPS[0].equations)
    assert section.locator(f".step-check li[data-check='{STEPS[0].check}']").is_visible()


@pytest.mark.parametrize("mode", ["normal", "projector"])
def test_walk_every_step_with_the_keyboard(page, mode):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(page.base_url + "/lesson" + ("?present=1" if mode == "projector" else ""))
    assert visible_steps(page) == [1]
    wait_step(page, 1)
    assert_step_shown_at_start(page)
    screenshot(page, f"lesson-{mode}-01")
    page.keyboard.press("ArrowRight")
    for n in range(2, len(STEPS) + 1):
        wait_step(page, n)
        assert_step_shown(page, n)
        screenshot(page, f"lesson-{mode}-{n:02d}")
        # every figure of the step, and its first control, within the first 720 pixels
        for name in STEPS[n - 1].figures:
            box = page.locator(f"#fig-s{n}-{name}").bounding_box()
            assert box["y"] + box["height"] <= 721, f"step {n}: {name} ends at {box}"
        if STEPS[n - 1].controls:
            box = page.locator(f"#ctl-{STEPS[n - 1].controls[0]}").bounding_box()
            assert box["y"] + box["height"] <= 720, f"step {n}: its control is off screen"
        # a clicker sends PageDown; the keyboard, the right arrow: both move on
        page.keyboard.press("PageDown" if n % 2 else "ArrowRight")
    assert visible_steps(page) == [len(STEPS)]  # past the end stays at the end
    page.keyboard.press("Home")
    wait_step(page, 1)
    assert_step_shown(page, 1)
    page.keyboard.press("End")
    page.keyboard.press("PageUp")
    assert visible_steps(page) == [len(STEPS) - 1]
    page.go_back()  # the browser's history holds the steps
    page.wait_for_function(f"() => !document.getElementById('step-{len(STEPS)}').hidden")


def test_reveal_on_a_key_and_on_the_button(page):
    page.goto(page.base_url + "/lesson/6")
    wait_step(page, 6)
    answer = page.locator("#step-6 .step-answer")
    assert answer.is_hidden()
    page.keyboard.press("r")
    assert answer.is_visible()
    assert STEPS[5].answer in answer.inner_text()
    page.keyboard.press("Space")
    assert answer.is_hidden()
    page.locator("#step-6 .reveal-button").click()
    assert answer.is_visible()
    assert page.locator("#step-6 .reveal-button").get_attribute("aria-expanded") == "true"


def test_the_url_of_step_n_opens_step_n(page):
    page.goto(page.base_url + "/lesson/9")
    wait_step(page, 9)
    assert_step_shown(page, 9)
    assert page.locator("#lesson-index").inner_text() == "9"
    assert page.locator(".step-notes").first.is_hidden()


def test_notes_show_with_notes_1(page):
    page.goto(page.base_url + "/lesson/3?notes=1")
    wait_step(page, 3)
    notes = page.locator("#step-3 .step-notes")
    assert notes.is_visible()
    assert STEPS[2].notes.ask in notes.inner_text()
    page.keyboard.press("ArrowRight")  # the notes follow the step, and ?notes=1 stays
    wait_step(page, 4)
    assert page.locator("#step-4 .step-notes").is_visible()
    assert "notes=1" in page.url


def test_a_slider_redraws_its_step_and_never_traps_the_arrows(page):
    page.goto(page.base_url + "/lesson/6")
    first = wait_step(page, 6)
    before = traces(page, 6, "grad_norms")
    slider = page.locator("#step-6 #ctl-weight_scale")
    slider.focus()
    page.keyboard.press("ArrowUp")  # Up/Down stay with the slider
    assert page.locator("#step-6 output[for='ctl-weight_scale']").inner_text() == "0.85"
    wait_step(page, 6, after=first)
    page.wait_for_function(
        "() => JSON.parse(document.getElementById('step-6').dataset.config).weight_scale === 0.85")
    assert traces(page, 6, "grad_norms") != before
    assert "weight_scale=0.85" in page.locator("#step-6 .open-link").get_attribute("href")
    # the focused slider does not swallow the clicker's arrow: it moves to the next step
    assert page.evaluate("() => document.activeElement.id") == "ctl-weight_scale"
    page.keyboard.press("ArrowRight")
    wait_step(page, 7)
    assert visible_steps(page) == [7]
    # coming back keeps the changed value
    page.keyboard.press("ArrowLeft")
    assert page.locator("#step-6 #ctl-weight_scale").input_value() == "0.85"


def test_projector_mode_fits_a_step_on_a_1280_by_720_screen(page):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(page.base_url + "/lesson/6?present=1")
    wait_step(page, 6)
    assert page.evaluate("() => document.body.classList.contains('present')")
    # the figure and its controls side by side, both on the first screen
    figure = page.locator("#fig-s6-grad_norms").bounding_box()
    control = page.locator("#step-6 #ctl-weight_scale").bounding_box()
    assert control["x"] > figure["x"] + figure["width"] - 1
    assert figure["y"] + figure["height"] <= 720 and control["y"] + control["height"] <= 720
    screenshot(page, "lesson-06-projector")


@pytest.mark.slow
def test_the_printed_handout_has_one_page_per_step(page):
    page.goto(page.base_url + "/lesson?print=1")
    page.wait_for_function("() => document.getElementById('lesson').dataset.printReady === '1'",
                           timeout=120_000)
    for n in range(1, len(STEPS) + 1):
        for name in STEPS[n - 1].figures:
            assert traces(page, n, name), f"step {n}: {name} not drawn for print"
    page.emulate_media(media="print")
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    try:
        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(pdf)).pages)
    except ImportError:
        pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert pages == len(STEPS)


# ---- projector mode with notes, answer revealed: every step on one 1280 x 720 screen -----------

# Boxes of what must fit, the plots' and diagrams' text sizes as drawn, and for each plot: its
# axis labels (tick labels, axis titles, colour-bar text), its title (with its subtitle), its
# legend, its annotations and the plot area of each of its subplots, for the shown step.
MEASURE = """(n) => {
  const s = document.getElementById('step-' + n);
  const box = (e) => { const b = e.getBoundingClientRect();
                       return [b.left, b.top, b.right, b.bottom]; };
  const shown = (e) => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
  const plots = [...s.querySelectorAll('.step-figure, .race-figure')].filter((p) => p.data);
  const drawnSize = (t) => {  // the rendered font size: its CSS size times the SVG's scale
    const m = t.getScreenCTM();
    return parseFloat(getComputedStyle(t).fontSize) * (m ? Math.hypot(m.a, m.b) : 1);
  };
  // each subplot's plot area on screen, keyed by its axes ("xy", "x2y2", ...)
  const areas = (p) => { const svg = p.querySelector('.main-svg').getBoundingClientRect();
    return Object.entries(p._fullLayout._plots).map(([id, sp]) => [id,
      [svg.left + sp.xaxis._offset, svg.top + sp.yaxis._offset,
       svg.left + sp.xaxis._offset + sp.xaxis._length,
       svg.top + sp.yaxis._offset + sp.yaxis._length]]);
  };
  const axisOf = (ref) => String(ref || 'paper').replace(' domain', '');
  return {
    answer: box(s.querySelector('.step-answer')),
    question: box(s.querySelector('.step-question')),
    title: box(s.querySelector('h1')),
    notes: box(s.querySelector('.step-notes')),
    controls: [...s.querySelectorAll('.step-controls [data-param]')].map(box),
    panels: [...s.querySelectorAll('.step-figure, .step-diagram, .step-race')].map(box),
    diagrams: [...s.querySelectorAll('.step-diagram svg')].map(box),
    textFits: ((t) => t.scrollHeight <= t.clientHeight + 1)(s.querySelector('.step-text')),
    page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    plotFonts: plots.flatMap((p) => [...p.querySelectorAll('svg text')]
      .filter((t) => t.textContent.trim()).map((t) => [t.textContent.trim(), drawnSize(t)])),
    diagramFonts: [...s.querySelectorAll('.step-diagram svg text')]
      .filter((t) => t.textContent.trim()).map((t) => [t.textContent.trim(), drawnSize(t)]),
    axisLabels: plots.map((p) => [...p.querySelectorAll(
      '.xtick text, .ytick text, .g-xtitle text, .g-ytitle text, .g-x2title text, .g-y2title text,'
      + ' .colorbar text')]
      .filter((t) => t.textContent.trim() && shown(t))
      .map((t) => [t.textContent.trim(), box(t)])),
    plots: plots.map((p) => ({
      id: p.id,
      box: box(p),
      areas: areas(p),
      title: [...p.querySelectorAll('.g-gtitle')].filter(shown).map(box)[0] || null,
      axisTitles: [...p.querySelectorAll('[class^="g-"][class$="title"]:not(.g-gtitle)')]
        .filter((g) => g.textContent.trim() && shown(g)).map((g) => [g.textContent.trim(), box(g)]),
      annotations: [...p.querySelectorAll('.annotation')].filter(shown).map((g) => {
        const note = p.layout.annotations[Number(g.dataset.index)] || {};
        return { text: g.textContent.trim(), box: box(g.querySelector('.annotation-text-g') || g),
                 xref: axisOf(note.xref), yref: axisOf(note.yref),
                 yanchor: note.yanchor || 'auto' };
      }),
      named: p._fullData.filter((t) => t.showlegend && t.visible === true).length,
      legend: p.layout.showlegend === false ? null
        : [...p.querySelectorAll('.infolayer .legend')].filter(shown).map((g) => ({
            box: box(g), entries: [...g.querySelectorAll('.traces')].filter(shown)
              .map((e) => [e.textContent.trim(), box(e)]) }))[0] || {},
    })),
  };
}"""


def inside(b, width=1280, height=720) -> bool:
    return b[0] >= -0.5 and b[1] >= -0.5 and b[2] <= width + 0.5 and b[3] <= height + 0.5


def within(b, outer) -> bool:
    return (b[0] >= outer[0] - 0.5 and b[1] >= outer[1] - 0.5
            and b[2] <= outer[2] + 0.5 and b[3] <= outer[3] + 0.5)


def overlap(a, b) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 1 and min(a[3], b[3]) - max(a[1], b[1]) > 1


def own_subplot(note: dict, areas: list) -> str:
    """The subplot an annotation belongs to: the one its axes name, or for one placed in paper
    coordinates, the subplot nearest to it; a note hung above a point (yanchor bottom: a row
    title) belongs to the row right under it, whichever row its box reaches into."""
    for axes, _ in areas:
        if note["xref"] != "paper" and axes.startswith(note["xref"] + "y"):
            return axes
        if note["yref"] != "paper" and axes.endswith(note["yref"]):
            return axes
    if note["yanchor"] == "bottom":
        return min(areas, key=lambda item: abs(item[1][1] - note["box"][3]))[0]
    mid = (note["box"][1] + note["box"][3]) / 2

    def distance(area):
        return 0 if area[1] <= mid <= area[3] else min(abs(mid - area[1]), abs(mid - area[3]))

    return min(areas, key=lambda item: distance(item[1]))[0]


def assert_plots_lay_out(number: int, m: dict) -> None:
    """Titles, legends and annotations each in their own place: a plot's title and legend inside
    its own container and off every drawing, and no annotation over another plot's area (another
    subplot of its figure, or another figure) or over an axis title."""
    every_area = [(plot["id"], axes, area) for plot in m["plots"] for axes, area in plot["areas"]]
    every_title = [(text, b) for plot in m["plots"] for text, b in plot["axisTitles"]]
    for plot in m["plots"]:
        name = plot["id"]
        if plot["title"]:
            assert within(plot["title"], plot["box"]), \
                f"step {number}: {name}'s title {plot['title']} leaves its container {plot['box']}"
            for drawing in m["diagrams"]:
                assert not overlap(plot["title"], drawing), \
                    f"step {number}: {name}'s title {plot['title']} runs into the diagram {drawing}"
        legend = plot["legend"]
        if plot["named"] > 1 and legend is not None:
            entries = legend.get("entries", [])
            assert len(entries) == plot["named"], \
                f"step {number}: {name} names {plot['named']} lines, its legend shows {entries}"
            assert within(legend["box"], plot["box"]), \
                f"step {number}: {name}'s legend {legend['box']} leaves its container {plot['box']}"
            for _, _, area in every_area:
                assert not overlap(legend["box"], area), \
                    f"step {number}: {name}'s legend covers a plot"
            if plot["title"]:
                assert not overlap(legend["box"], plot["title"]), \
                    f"step {number}: {name}'s legend runs into its title"
        for note in plot["annotations"]:
            own = own_subplot(note, plot["areas"])
            for figure, axes, area in every_area:
                if figure == name and axes == own:
                    continue
                assert not overlap(note["box"], area), \
                    f"step {number}: {note['text']!r} of {name} runs over {figure}'s {axes} plot"
            for text, b in every_title:
                assert not overlap(note["box"], b), \
                    f"step {number}: annotation {note['text']!r} runs over the axis title {text!r}"
            for drawing in m["diagrams"]:
                assert not overlap(note["box"], drawing), \
                    f"step {number}: annotation {note['text']!r} runs into the diagram"


@pytest.mark.parametrize("number", range(1, len(STEPS) + 1))
def test_projector_with_notes_every_step_and_its_answer_fit_the_screen(page, number):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{page.base_url}/lesson/{number}?present=1&notes=1")
    wait_step(page, number)
    page.keyboard.press("r")
    page.wait_for_timeout(250)
    m = page.evaluate(MEASURE, number)
    screenshot(page, f"lesson-projector-notes-{number:02d}")
    assert m["page"] == [1280, 720], f"step {number}: the page scrolls ({m['page']})"
    for name in ("answer", "question", "title", "notes"):
        assert inside(m[name]), f"step {number}: the {name} is off screen at {m[name]}"
    assert m["textFits"], f"step {number}: the text column is cut"
    for b in m["controls"] + m["panels"]:
        assert inside(b), f"step {number}: {b} off screen"
    small = [(text, round(size, 1)) for text, size in m["plotFonts"] + m["diagramFonts"]
             if size < 15.9]
    assert not small, f"step {number}: text under 16 px: {small[:8]}"
    for labels in m["axisLabels"]:
        for i, (text, box) in enumerate(labels):
            for other, other_box in labels[i + 1:]:
                assert not overlap(box, other_box), f"step {number}: {text!r} overlaps {other!r}"
    assert_plots_lay_out(number, m)


def test_a_moved_control_and_the_revealed_answer_survive_a_reload(page):
    page.goto(page.base_url + "/lesson/6")
    first = wait_step(page, 6)
    slider = page.locator("#step-6 #ctl-weight_scale")
    slider.focus()
    page.keyboard.press("ArrowUp")
    wait_step(page, 6, after=first)
    page.keyboard.press("r")
    assert "weight_scale=0.85" in page.url and "answer=1" in page.url
    page.reload()
    wait_step(page, 6)
    assert page.locator("#step-6 #ctl-weight_scale").input_value() == "0.85"
    assert json.loads(page.locator("#step-6").get_attribute("data-config"))["weight_scale"] == 0.85
    assert page.locator("#step-6 .step-answer").is_visible()
    # moving on leaves the step's own settings behind; coming back by history restores them
    page.keyboard.press("ArrowRight")
    wait_step(page, 7)
    assert "weight_scale" not in page.url and "answer" not in page.url
    page.go_back()
    page.wait_for_function("() => !document.getElementById('step-6').hidden")
    assert "weight_scale=0.85" in page.url


@pytest.mark.slow
def test_the_finale_trains_a_race_and_says_who_learned(page):
    n = len(STEPS)
    page.goto(f"{page.base_url}/lesson/{n}")
    wait_step(page, n)
    page.locator(f"#race-s{n} .race-start").click()
    page.wait_for_function(
        f"() => ['done', 'error'].includes(document.getElementById('race-s{n}').dataset.state)",
        timeout=600_000)
    assert page.locator(f"#race-s{n}").get_attribute("data-state") == "done"
    result = page.locator(f"#race-s{n} .race-result").inner_text()
    # the sentence's chance is the chance line drawn (1 in 8 symbols: 12.5%, not "13%")
    assert result.startswith("After ") and "LSTM" in result
    chance = page.evaluate(f"() => document.getElementById('race-fig-s{n}').data.at(-1).y[0]")
    assert f"chance is {round(chance, 1):g}%" in result, (chance, result)
    # The answer's measured claim, on the race's own seed: the LSTM and the GRU learn within
    # its 600 steps, the plain RNN does not.
    assert "Learned the task (95% or more): LSTM and GRU" in result, result
    drawn = traces(page, n, "retention")
    assert drawn
    race = page.evaluate(f"() => document.getElementById('race-fig-s{n}').data.length")
    assert race == 4  # three networks and the chance line
