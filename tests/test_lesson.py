"""The lesson file: it loads, every step's preset shows its claim, and a broken file is refused
at startup with a message naming the step and the field."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from gradient_flow_lab.app.lesson import (
    LESSON_ENV,
    LessonError,
    check_url,
    lesson,
    lesson_path,
    parse_lesson,
    step_state,
)
from gradient_flow_lab.app.resources import static_dir
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import simulate
from gradient_flow_lab.app.views import build_view

LESSON = lesson()
RAW = tomllib.loads(lesson_path().read_text(encoding="utf-8"))


def test_the_lesson_follows_the_syllabus_in_order():
    steps = LESSON.steps
    pages = [step.page for step in steps]
    assert len(steps) >= 15
    # the loop, memory, BPTT, the update, truncation, Jacobians, explosion + clipping, ...
    assert pages[:5] == ["bptt", "explore", "bptt", "bptt", "bptt"]
    assert steps[0].diagram == "unrolled"
    assert steps[3].check == "update"  # step 5 of BPTT: the weights move
    assert steps[4].preset["truncation"] == 8
    assert steps[6].check == "clip" and steps[6].preset["weight_scale"] > 1  # explodes, clipped
    assert steps[7].check == "vanish" and steps[7].preset["clip"] > 0  # clipping cannot help
    assert pages[8] == "activations"
    assert steps[10].check == "cec" and steps[10].diagram == "lstm"  # the 1997 carousel
    gates = steps[11].explanation  # analog gates: values in 0..1 with a slope
    assert "between 0\nand 1" in gates and "slope 0" in gates
    assert steps[-2].preset.get("cell") == "gru" and steps[-2].diagram == "gru"
    assert steps[-1].race is not None and steps[-1].link is not None
    assert steps[-1].link.page == "train"


def api_checks(client, step, state=None) -> dict:
    """The checks the step's page API returns for its state, by id (what an outside checker
    sees at the step's check_url)."""
    response = client.get(check_url(step, state))
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["checks"]}


@pytest.mark.parametrize("number", range(1, len(LESSON.steps) + 1))
def test_each_steps_check_passes_through_its_page_api(client, number):
    """The claim a step makes is seen to hold: its check, returned by its own page's API for
    the step's own settings, is green."""
    step = LESSON.steps[number - 1]
    checks = api_checks(client, step)
    assert checks[step.check]["status"] == "pass", checks[step.check]


def test_the_lesson_as_json_lists_each_steps_check_and_where_to_verify_it(client):
    steps = client.get("/api/lesson").json()["steps"]
    for number, (data, step) in enumerate(zip(steps, LESSON.steps, strict=True), 1):
        assert data["number"] == number and data["check"] == step.check
        url = data["check_url"]
        assert url.startswith("/api/simulate?view=" if step.page != "activations"
                              else "/api/activations?")
        found = {c["id"]: c for c in client.get(url).json()["checks"]}
        assert found[step.check]["status"] == "pass", (number, found[step.check])
    assert steps[-1]["race_state"]["lag"] == LESSON.steps[-1].race["lag"]


# ---- the answers' own numbers, at the step's settings and at the values their words name ------

def summary(step, **change) -> dict:
    state = step_state(step) | change
    return build_view(SimulationConfig.model_validate(state), step.page).summary


def test_step_1_the_error_reaches_h0_through_11_copies_of_w_and_arrives_smaller():
    step = LESSON.steps[0]
    assert step.preset["seq_len"] - 1 == 11 and "0.9¹¹ ≈ 0.31" in step.answer
    assert 0.9 ** 11 == pytest.approx(0.31, abs=0.005)
    assert summary(step)["retention"] < 0.9 ** 11


def test_step_2_a_weight_scale_of_3_saturates_tanh_without_blowing_up():
    step = LESSON.steps[1]
    sim = simulate(SimulationConfig.model_validate(step_state(step)))
    hidden = sim.trace.hidden
    assert np.isfinite(hidden).all() and np.abs(hidden).max() < 1
    assert (np.abs(hidden) > 0.9).mean() > 0.5  # "most units sit near ±1"


def test_step_3_the_loss_at_the_last_step_gives_early_steps_small_shares():
    step = LESSON.steps[2]
    assert step.preset["loss_at"] == "last" and "last step only" in step.question
    shares = simulate(SimulationConfig.model_validate(step_state(step))).contribution_norms[-1]
    assert shares[-1] > 100 * shares[1]  # the latest steps dominate
    everywhere = simulate(SimulationConfig.model_validate(
        step_state(step) | {"loss_at": "all"})).contribution_norms[-1]
    assert everywhere.max() / everywhere[1:].min() < 10  # "the bars even out"


def test_step_4_one_update_lowers_the_loss_and_an_exploding_one_raises_it(client):
    step = LESSON.steps[3]
    detail = api_checks(client, step)["update"]["detail"]
    assert detail.startswith("loss 2.589 → 0.9633") and "2.59 before, 0.96 after" in step.answer
    assert "moved by 0.215 (its norm is 5.09)" in detail and "0.22 against its norm of 5.1" \
        in step.answer
    exploding = api_checks(client, step, step_state(step) | {"weight_scale": 4.0})["update"]
    assert "W_hh moved by 644 (its norm is 22.6)" in exploding["detail"]
    assert "throws W_hh 644 away, against a norm of 23" in step.answer


def test_step_7_clipping_caps_an_exploding_gradient_and_rescues_the_update(client):
    step = LESSON.steps[6]
    s = summary(step)
    assert s["clipping"]["norm"] > 1000 and s["clipping"]["clipped_norm"] == pytest.approx(1)
    bptt = LESSON.steps[3]
    raw = api_checks(client, bptt, step_state(bptt) | {"weight_scale": 2.5, "seq_len": 60})
    clipped = api_checks(client, bptt, step_state(bptt) | {"weight_scale": 2.5, "seq_len": 60,
                                                            "clip": 1.0})
    assert raw["update"]["detail"].startswith("loss 2.263 → 2.807")
    assert clipped["update"]["detail"].startswith("loss 2.263 → 1.761")
    assert "2.26 → 2.81" in step.answer and "→ 1.76" in step.answer


def test_step_10_tanh_still_vanishes_and_falls_17_decades_at_scale_1():
    step = LESSON.steps[9]
    assert summary(step)["retention"] < 1e-20  # "about 10⁻²¹"
    at_one = summary(step, weight_scale=1.0)["retention"]
    assert 16.5 < -np.log10(at_one) < 18  # "about 17 decades"
    assert "17 decades" in step.answer and "drifts" not in step.answer


def test_step_11_the_carousel_keeps_all_but_a_fifth_of_a_percent():
    step = LESSON.steps[10]
    s = summary(step)
    assert s["grad_state_first"] / s["grad_state_last"] == pytest.approx(0.998, abs=0.003)
    assert summary(step, forget_bias=1.0)["carry_gain_total"] == pytest.approx(2.2e-7, rel=0.1)


def test_step_12_gates_are_analog_and_b_f_has_a_slope():
    step = LESSON.steps[11]
    sim = simulate(SimulationConfig.model_validate(step_state(step)))
    for gate in ("i", "f", "o"):
        values = sim.trace.gates[gate]
        assert 0 < values.min() and values.max() < 1  # strictly between 0 and 1
    f = float(sim.trace.gates["f"].mean())
    assert f * (1 - f) == pytest.approx(0.20, abs=0.01)  # sigma'(b_f) > 0


def test_step_13_and_14_the_numbers_in_their_answers():
    compare = summary(LESSON.steps[12])["cells"]
    assert compare["lstm"]["retention"] == pytest.approx(0.18, abs=0.01)
    assert 1e-12 < compare["rnn"]["retention"] < 1e-10  # "10⁻¹¹"
    gru = summary(LESSON.steps[13])
    assert gru["carry_gain_total"] == pytest.approx(2e-15, rel=0.15)


def test_every_diagram_is_ours_accessible_and_legible():
    names = {step.diagram for step in LESSON.steps if step.diagram}
    assert names == {"unrolled", "lstm", "gru"}
    for name in names:
        text = (static_dir() / "img" / f"{name}.svg").read_text(encoding="utf-8")
        assert 'role="img"' in text and "<title" in text and "<desc" in text
        sizes = [float(v) for v in re.findall(r'font-size="([\d.]+)"', text)]
        assert min(sizes) >= 17, (name, sizes)
    unrolled = (static_dir() / "img" / "unrolled.svg").read_text(encoding="utf-8")
    for label in (">W<", ">U<", ">V<"):
        assert label in unrolled
    lstm = (static_dir() / "img" / "lstm.svg").read_text(encoding="utf-8")
    for label in (">f<", ">i<", ">o<", "constant error carousel", ">c<"):
        assert label in lstm
    gru = (static_dir() / "img" / "gru.svg").read_text(encoding="utf-8")
    for label in (">z<", ">r<", "update", "reset"):
        assert label in gru


def test_pages_render_every_step_with_its_maths(client):
    response = client.get("/lesson")
    assert response.status_code == 200
    html = response.text
    assert html.count('class="lesson-step"') == len(LESSON.steps)
    assert html.count("<math") == sum(len(step.equations) for step in LESSON.steps)
    assert 'data-current="1"' in html
    assert client.get(f"/lesson/{len(LESSON.steps)}").status_code == 200
    assert f'data-current="{len(LESSON.steps)}"' in client.get(f"/lesson/{len(LESSON.steps)}").text
    for missing in (0, len(LESSON.steps) + 1):
        assert client.get(f"/lesson/{missing}").status_code == 404


def test_notes_are_hidden_unless_asked_for(client):
    plain = client.get("/lesson/2").text
    assert plain.count('aria-label="Speaker notes" hidden') == len(LESSON.steps)
    with_notes = client.get("/lesson/2?notes=1").text
    assert 'aria-label="Speaker notes" hidden' not in with_notes
    assert LESSON.steps[1].notes.say in with_notes


def test_the_lesson_as_json(client):
    response = client.get("/api/lesson")
    assert response.status_code == 200
    steps = response.json()["steps"]
    assert [s["title"] for s in steps] == [s.title for s in LESSON.steps]
    assert all(s["mathml"][0].startswith("<math") for s in steps)
    assert steps[5]["state"]["weight_scale"] == LESSON.steps[5].preset["weight_scale"]


def test_the_explorer_link_carries_the_steps_state(client):
    html = client.get("/lesson/6").text
    assert "/explore?cell=rnn&amp;nonlinearity=tanh&amp;seq_len=60" in html
    assert "weight_scale=0.8" in html
    assert "/train?task=delayed_recall" in html  # the finale opens the training lab


# ---- a broken lesson file ----------------------------------------------------------------------

def broken(change) -> dict:
    data = copy.deepcopy(RAW)
    change(data)
    return data


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["steps"][1]["preset"].update(weight_scale=99), ["step 2", "preset",
                                                                  "weight_scale"]),
    (lambda d: d["steps"][2].pop("question"), ["step 3", "question"]),
    (lambda d: d["steps"][3]["preset"].update(depth=3), ["step 4", "preset", "depth"]),
    (lambda d: d["steps"][4].update(check="nonsense"), ["step 5", "check", "nonsense"]),
    (lambda d: d["steps"][5].update(figures=["spread"]), ["step 6", "figures", "spread"]),
    (lambda d: d["steps"][8].update(controls=["seq_len"]), ["step 9", "controls", "seq_len"]),
    (lambda d: d["steps"][7].update(equation="\\frac{1}{"), ["step 8", "equation"]),
    (lambda d: d["steps"][8].update(colour="red"), ["step 9", "colour"]),
    (lambda d: d["steps"][0]["preset"].update(seq_len=1000, hidden_size=256, num_layers=4),
     ["step 1", "preset", "work"]),
    (lambda d: d["steps"][-1]["link"]["preset"].update(lag=9999), ["link.preset", "lag"]),
    (lambda d: d["steps"][-1]["race"].update(lag=9999), ["race", "lag"]),
    (lambda d: d["steps"][0].update(diagram="heart"), ["step 1", "diagram"]),
    (lambda d: d["steps"][0].update(figures=["unrolled", "reach"]), ["step 1", "panels"]),
])
def test_a_broken_step_is_refused_naming_the_step_and_field(change, words):
    with pytest.raises(LessonError) as error:
        parse_lesson(broken(change))
    message = str(error.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_the_app_refuses_to_start_with_a_broken_lesson_file(tmp_path):
    text = lesson_path().read_text(encoding="utf-8")
    bad = tmp_path / "lesson.toml"
    bad.write_text(text.replace('check = "truncation_reach"', 'check = "reach_everything"'),
                   encoding="utf-8")
    env = {**os.environ, LESSON_ENV: str(bad)}
    started = subprocess.run([sys.executable, "-c", "import gradient_flow_lab.app.main"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "step 5 ('Truncated BPTT: cheaper, shorter-sighted')" in started.stderr
    assert "reach_everything" in started.stderr
    # the shipped file starts
    fine = subprocess.run([sys.executable, "-c", "import gradient_flow_lab.app.main"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != LESSON_ENV})
    assert fine.returncode == 0, fine.stderr
