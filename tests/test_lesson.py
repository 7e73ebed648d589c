"""The lesson file: it loads, every step's preset shows its claim, and a broken file is refused
at startup with a message naming the step and the field."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib

import pytest

from gradient_flow_lab.app.lesson import (
    LESSON_ENV,
    LessonError,
    lesson,
    lesson_path,
    parse_lesson,
    step_state,
)
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.views import activations as activations_view
from gradient_flow_lab.app.views import build_view

LESSON = lesson()
RAW = tomllib.loads(lesson_path().read_text(encoding="utf-8"))


def test_the_lesson_follows_the_syllabus_in_order():
    pages = [step.page for step in LESSON.steps]
    assert len(LESSON.steps) >= 12
    # the loop, memory, BPTT, truncation, Jacobians, clipping, sigmoid, ..., LSTM, ..., GRU, finale
    assert pages[:4] == ["bptt", "explore", "bptt", "bptt"]
    assert [s.preset.get("truncation", 0) for s in LESSON.steps[3:4]] == [8]
    assert "clip" in LESSON.steps[5].preset
    assert pages[6] == "activations"
    assert LESSON.steps[8].check == "cec"
    assert LESSON.steps[-2].preset.get("cell") == "gru"
    assert LESSON.steps[-1].link is not None and LESSON.steps[-1].link.page == "train"


@pytest.mark.parametrize("number", range(1, len(LESSON.steps) + 1))
def test_each_steps_preset_passes_its_paper_check(number):
    """The claim a step makes is seen to hold: its check is green on its own preset."""
    step = LESSON.steps[number - 1]
    state = step_state(step)
    if step.page == "activations":
        summary = activations_view.summarize(state["depth"], state["x0"])
        assert summary["sigmoid_grad_max"] == pytest.approx(0.25, abs=1e-3)
        assert summary["tanh_grad_max"] == pytest.approx(1, abs=1e-3)
        return
    result = build_view(SimulationConfig.model_validate(state), step.page)
    found = {item["id"]: item for item in result.checks}
    assert found[step.check]["status"] == "pass", found[step.check]


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
    assert steps[4]["state"]["weight_scale"] == LESSON.steps[4].preset["weight_scale"]


def test_the_explorer_link_carries_the_steps_state(client):
    html = client.get("/lesson/5").text
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
    (lambda d: d["steps"][6].update(controls=["seq_len"]), ["step 7", "controls", "seq_len"]),
    (lambda d: d["steps"][7].update(equation="\\frac{1}{"), ["step 8", "equation"]),
    (lambda d: d["steps"][8].update(colour="red"), ["step 9", "colour"]),
    (lambda d: d["steps"][0]["preset"].update(seq_len=1000, hidden_size=256, num_layers=4),
     ["step 1", "preset", "work"]),
    (lambda d: d["steps"][-1]["link"]["preset"].update(lag=9999), ["link.preset", "lag"]),
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
    assert "step 4 ('Truncated BPTT: cheaper, shorter-sighted')" in started.stderr
    assert "reach_everything" in started.stderr
    # the shipped file starts
    fine = subprocess.run([sys.executable, "-c", "import gradient_flow_lab.app.main"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != LESSON_ENV})
    assert fine.returncode == 0, fine.stderr
