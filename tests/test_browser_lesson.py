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
    page.goto(page.base_url + "/lesson/5")
    wait_step(page, 5)
    answer = page.locator("#step-5 .step-answer")
    assert answer.is_hidden()
    page.keyboard.press("r")
    assert answer.is_visible()
    assert STEPS[4].answer in answer.inner_text()
    page.keyboard.press("Space")
    assert answer.is_hidden()
    page.locator("#step-5 .reveal-button").click()
    assert answer.is_visible()
    assert page.locator("#step-5 .reveal-button").get_attribute("aria-expanded") == "true"


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
    page.goto(page.base_url + "/lesson/5")
    first = wait_step(page, 5)
    before = traces(page, 5, "grad_norms")
    slider = page.locator("#step-5 #ctl-weight_scale")
    slider.focus()
    page.keyboard.press("ArrowUp")  # Up/Down stay with the slider
    assert page.locator("#step-5 output[for='ctl-weight_scale']").inner_text() == "0.85"
    wait_step(page, 5, after=first)
    page.wait_for_function(
        "() => JSON.parse(document.getElementById('step-5').dataset.config).weight_scale === 0.85")
    assert traces(page, 5, "grad_norms") != before
    assert "weight_scale=0.85" in page.locator("#step-5 .open-link").get_attribute("href")
    # the focused slider does not swallow the clicker's arrow: it moves to the next step
    assert page.evaluate("() => document.activeElement.id") == "ctl-weight_scale"
    page.keyboard.press("ArrowRight")
    wait_step(page, 6)
    assert visible_steps(page) == [6]
    # coming back keeps the changed value
    page.keyboard.press("ArrowLeft")
    assert page.locator("#step-5 #ctl-weight_scale").input_value() == "0.85"


def test_projector_mode_fits_a_step_on_a_1280_by_720_screen(page):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(page.base_url + "/lesson/5?present=1")
    wait_step(page, 5)
    assert page.evaluate("() => document.body.classList.contains('present')")
    # the figure and its controls side by side, both on the first screen
    figure = page.locator("#fig-s5-grad_norms").bounding_box()
    control = page.locator("#step-5 #ctl-weight_scale").bounding_box()
    assert control["x"] > figure["x"] + figure["width"] - 1
    assert figure["y"] + figure["height"] <= 720 and control["y"] + control["height"] <= 720
    screenshot(page, "lesson-05-projector")


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
