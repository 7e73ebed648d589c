"""Sentences made from the numbers: every caption, status and check detail fixed for issue 20 is
asserted here against the numbers on the same screen, in at least two configurations, one of
which flips the sentence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.views import build_view
from gradient_flow_lab.app.views.activations import summarize as activation_summary
from gradient_flow_lab.app.views.chaos import EDGE, SLOW
from gradient_flow_lab.app.views.models import build_report
from gradient_flow_lab.engine import io as model_io
from tests.strict_json import post_json


def view(page: str, **config):
    return build_view(SimulationConfig(**config), page)


def checks_of(result) -> dict:
    return {item["id"]: item for item in result.checks}


# ---- /bptt ------------------------------------------------------------------------------------

def test_bptt_contribution_caption_names_the_steps_that_lose_the_most():
    """Loss at every step, k = 10: the last step before a cut keeps less of its W_hh term than
    the first step of a chunk (the caption used to say the opposite; t = 29: 1.433 -> 1.070,
    t = 30: 1.689 -> 1.688). With the loss at the last step only, whole terms are lost."""
    k, T = 10, 100
    result = view("bptt", seq_len=T, truncation=k, loss_at="all")
    full = result.series["contribution_norms_full"][-1]
    trunc = result.series["contribution_norms_truncated"][-1]
    ends = np.arange(k - 1, T - 1, k)
    kept_end = np.median(trunc[ends] / full[ends])
    starts = np.maximum(ends - (k - 1), 1)  # t = 0's term is always 0
    kept_start = np.median(trunc[starts] / full[starts])
    assert kept_end < kept_start  # the numbers the sentence must follow
    sentence = result.summary["contribution_sentence"]
    assert "the steps just before a cut lose the most" in sentence
    assert f"last step before a cut {kept_end:.0%}" in sentence
    assert f"t = {k - 1}, {full[k - 1]:.3g} → {trunc[k - 1]:.3g}" in sentence

    last_only = view("bptt", seq_len=T, truncation=k, loss_at="last")
    trunc = last_only.series["contribution_norms_truncated"][-1]
    assert np.all(trunc[1:T - k] == 0) and np.all(trunc[T - k:] > 0)
    sentence = last_only.summary["contribution_sentence"]
    assert f"the {T - k - 1} steps from t = 1 to t = {T - k - 1} lose their whole term" in sentence
    assert "just before a cut lose the most" not in sentence


def test_bptt_grad_norm_caption_gives_the_drop_at_the_first_cut():
    k = 10
    result = view("bptt", seq_len=50, truncation=k, loss_at="all")
    trunc = result.series["grad_norms_truncated"][-1]
    full = result.series["grad_norms_full"][-1]
    assert trunc[k - 1] < full[k - 1]
    sentence = result.summary["grad_norm_sentence"]
    assert f"at t = {k - 1}, the truncated gradient drops to {trunc[k - 1]:.3g}" in sentence
    exact = view("bptt", seq_len=30, truncation=30, loss_at="all").summary
    assert "no cut, the two curves are the same" in exact["grad_norm_sentence"]
    assert "exactly full BPTT" in exact["contribution_sentence"]


def test_bptt_comparison_sentence_follows_the_cosine():
    close = view("bptt", seq_len=50, truncation=40, loss_at="all", weight_scale=0.5).summary
    far = view("bptt", seq_len=100, truncation=10, loss_at="last", input_scale=0.01).summary
    assert close["cosine"] > 0.99 > far["cosine"]
    assert "points almost the same way as the full one" in close["comparison_sentence"]
    assert f"cosine {close['cosine']:.4f}" in close["comparison_sentence"]
    assert "almost the same way" not in far["comparison_sentence"]
    assert f"cosine {far['cosine']:.3g}" in far["comparison_sentence"]


def test_bptt_truncation_zero_draws_no_truncated_curve_anywhere(client):
    document = post_json(client, "/api/simulate", {"seq_len": 12, "loss_at": "all",
                                                   "truncation": 0}, params={"view": "bptt"})
    for name, figure in document["figures"].items():
        for trace in figure["data"]:
            assert "truncated" not in str(trace.get("name", "")), name
        assert "k = 10" not in str(figure["layout"]), name
    assert "full BPTT alone" in document["summary"]["comparison_sentence"]


# ---- /explore ---------------------------------------------------------------------------------

def test_explore_bound_caption_describes_the_line_drawn_and_whether_it_holds():
    """With the loss at every step the curve is far above (γσ)^(T−1−t) ‖∂loss/∂h_T−1‖ (the old
    caption's formula) but under the recursive bound actually drawn, and the caption says so;
    with the loss at the last step only the two are the same, and the caption gives the formula."""
    every = view("explore", seq_len=100, loss_at="all", weight_scale=0.9)
    sim = every.primary
    norms = sim.grad_norms[-1]
    rate = sim.gamma * sim.sigma_max[-1]
    closed_form = norms[-1] * rate ** (99 - np.arange(100))
    assert np.max(norms / closed_form) > 100, "the old caption's formula does not hold here"
    assert np.all(np.log10(norms) <= sim.bound_log10 + 1e-9)
    sentence = every.summary["bound_sentence"]
    assert "built back from the end" in sentence and "adds every later loss's share" in sentence
    assert "stays under it at all 100 steps" in sentence
    last = view("explore", seq_len=100, loss_at="last", weight_scale=0.9).summary["bound_sentence"]
    assert "(γ·σ_max)^(T−1−t) × ‖∂loss/∂h_T−1‖" in last
    assert "adds every later loss" not in last
    gated = view("explore", cell="lstm").summary["bound_sentence"]
    assert gated.startswith("No bound is drawn")


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_explore_status_names_every_norm(clip):
    result = view("explore", seq_len=100, weight_scale=2.5, clip=clip)
    status = " · ".join(result.summary["status"])
    norm = result.summary["clipping"]["norm"]
    assert "gradient norm" not in status
    mantissa, exponent = f"{norm:.2e}".split("e")
    assert re.search(rf"‖∂loss/∂θ‖ \(all weights\) = {mantissa}×10", status), status
    assert ("after clipping at 1" in status) == bool(clip)
    ratio = result.summary["retention"]
    assert "the gradient at step 0 is" in status and f"= {ratio:.3g})" in status
    assert "times the one at the end" in status  # exploding: larger at step 0
    vanishing = " · ".join(view("explore", seq_len=100, weight_scale=0.5).summary["status"])
    assert "of the one at the end" in vanishing and "times the one at the end" not in vanishing


def test_overflow_status_says_what_happened_in_words():
    overflow = view("explore", cell="rnn", nonlinearity="relu", weight_scale=10.0, seq_len=500)
    step = overflow.summary["overflow_step"]
    status = " · ".join(overflow.summary["status"])
    assert "not a number" not in status.split("λ₁")[-1].split(":")[0]
    assert "λ₁ cannot be measured: the states past the overflow are not numbers" in status
    assert f"the run left float64 at t = {step}" in status
    assert "no ‖∂loss/∂hₜ‖ at any step is a number" in status
    fine = " · ".join(view("explore", seq_len=50).summary["status"])
    assert "loss = " in fine and "left float64" not in fine and "λ₁ = " in fine


def test_growth_check_leaves_out_the_identity_at_the_last_step():
    """The product ∂h_T−1/∂h_T−1 is the identity (norm 1) whatever the weights: it used to be
    the 'largest product' of every vanishing run. Now the largest is a real product, and with
    T = 1 nothing is left to judge."""
    shrinking = checks_of(view("explore", seq_len=30, weight_scale=0.5))["growth"]
    assert shrinking["status"] == "pass"
    largest = float(re.search(r"over t < T−1 = ([0-9.e+-]+)", shrinking["detail"]).group(1))
    assert largest < 0.6
    growing = checks_of(view("explore", seq_len=30, weight_scale=2.5))["growth"]
    assert float(re.search(r"over t < T−1 = ([0-9.e+-]+)", growing["detail"]).group(1)) > 1
    assert checks_of(view("explore", seq_len=1))["growth"]["status"] == "n/a"


@pytest.mark.parametrize("config,expected", [
    ({"weight_scale": 0.9, "seq_len": 100}, ("pass", "n/a", "fail")),
    ({"weight_scale": 2.5, "seq_len": 100}, ("n/a", "pass", "fail")),
    ({"weight_scale": 1.0, "input_scale": 0.01, "seq_len": 100}, ("fail", "n/a", "pass")),
    ({"weight_scale": 0.9, "seq_len": 100, "loss_at": "all"}, ("n/a", "n/a", "n/a")),
])
def test_run_checks_follow_the_per_step_factor(config, expected):
    result = view("explore", **config)
    found = checks_of(result)
    assert tuple(found[name]["status"] for name in ("vanishes", "explodes", "edge")) == expected
    ratio = result.summary["retention"]
    if expected[0] != "n/a":
        assert (ratio < 1e-3) == (expected[0] == "pass")
    for name in ("vanishes", "explodes", "edge"):
        assert found[name]["kind"] == "measured"
        assert found[name]["label"].startswith("This run:")


# ---- λ₁ in words (/explore status, /chaos verdict) --------------------------------------------

@pytest.mark.parametrize("config", [
    {"weight_scale": 1.0, "input_scale": 0.1, "seq_len": 100},  # x0.946: "shrinks slowly"
    {"weight_scale": 1.2, "input_scale": 0.01, "seq_len": 100},  # x1.02: "grows slowly"
    {"weight_scale": 2.5, "seq_len": 100},  # x1.15: "explodes"
    {"weight_scale": 0.5, "seq_len": 100},  # "vanishes"
    {"weight_scale": 1.0, "input_scale": 0.01, "seq_len": 100},  # "near the edge"
])
def test_lyapunov_words_match_the_size_of_the_factor(config):
    summary = view("explore", **config).summary
    largest, words = summary["lyapunov_largest"], summary["lyapunov_prediction"]
    assert f"×{np.exp(largest):.3g} per step" in words
    if abs(largest) < EDGE:
        assert words.startswith("near the edge of chaos")
    elif abs(largest) < SLOW:
        assert ("shrinks slowly" if largest < 0 else "grows slowly") in words
        assert "explodes" not in words and "vanishes" not in words
        assert "between ×0.905 and ×1.105 a step" in words  # the threshold, stated
    else:
        assert ("vanishes going back" if largest < 0 else "explodes going back") in words


@pytest.mark.parametrize("config", [{"cell": "lstm"}, {"cell": "rnn", "weight_scale": 0.5}])
def test_chaos_phase_colour_bar_spans_the_data_symmetrically(config):
    result = view("chaos", **config)
    for name, figure in result.figures.items():
        if not name.startswith("phase_"):
            continue
        heatmap = figure_json(figure)["data"][0]
        values = np.array([[np.nan if v is None else v for v in row] for row in heatmap["z"]])
        assert heatmap["zmin"] == -heatmap["zmax"]
        assert heatmap["zmax"] >= np.nanmax(np.abs(values))
        white = [stop for stop in heatmap["colorscale"] if stop[1] == "rgb(255,255,255)"]
        assert white == [[0.5, "rgb(255,255,255)"]]
        ticks = heatmap["colorbar"]["tickvals"]
        assert min(ticks) == heatmap["zmin"] and max(ticks) == heatmap["zmax"] and 0.0 in ticks


# ---- /compare ---------------------------------------------------------------------------------

def test_compare_checks_are_comparisons_and_say_so(client):
    keeps = checks_of(view("compare", seq_len=100))
    loses = checks_of(view("compare", seq_len=100, weight_scale=1.0, input_scale=0.01))
    assert keeps["lstm_keeps_more"]["status"] == "pass"
    assert loses["lstm_keeps_more"]["status"] == "fail"
    assert loses["lstm_keeps_more"]["detail"].startswith("no, not here")
    for found in (keeps, loses):
        for item in found.values():
            assert item["kind"] == "measured"
        assert found["lstm_keeps_more"]["label"].startswith("Comparison:")
    page = client.get("/compare").text
    assert "Comparisons on this run" in page and "Not theorems" in page
    assert "Claims from the theory" not in page


# ---- /activations -----------------------------------------------------------------------------

def test_activations_status_says_which_chain_keeps_more():
    saturated = activation_summary(1, 3.0)
    middle = activation_summary(10, 0.5)
    for summary in (saturated, middle):
        chains = summary["chains"]
        ratio = chains["tanh"]["grad_product"] / chains["sigmoid"]["grad_product"]
        assert ("times the sigmoid one" in summary["status"]) == (ratio > 1)
        assert ("of the sigmoid one" in summary["status"]) == (ratio < 1)
    assert "tanh is the flatter of the two" in saturated["status"]


# ---- the model report -------------------------------------------------------------------------

def _report(tmp_path: Path, scale: float):
    hidden = 6
    rng = np.random.default_rng(0)
    state = {"weight_ih_l0": rng.standard_normal((hidden, 2)),
             "weight_hh_l0": scale * np.linalg.qr(rng.standard_normal((hidden, hidden)))[0],
             "bias_ih_l0": np.zeros(hidden), "bias_hh_l0": np.zeros(hidden)}
    path = tmp_path / f"model_{scale}.npz"
    np.savez(path, **state)
    return build_report(model_io.load_model(path), rng.standard_normal((60, 1, 2)))[0]


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_model_report_horizon_and_the_two_factors_are_explained(tmp_path, scale):
    report = _report(tmp_path, scale)
    (horizon,) = report["horizon"]
    (row,) = report["lyapunov"]
    sentence = horizon["meaning"]
    assert "keeps a thousandth of its size for" not in sentence
    if horizon["factor"] < 1:
        assert f"shrinks by about ×{horizon['factor']:.3g} per step" in sentence
        assert f"after about {horizon['horizon']:.3g} steps only a thousandth" in sentence
    else:
        assert "does not shrink" in sentence
    (note,) = report["factor_notes"]
    fitted, lyapunov = horizon["factor"], row["lyapunov_factor_per_step"]
    gap = abs(fitted - lyapunov) / lyapunov
    assert (("agree within 5%" in note) if gap <= 0.05 else (f"differ by {gap:.0%}" in note))
    assert f"×{fitted:.3g}" in note and f"×{lyapunov:.3g}" in note
    assert "warm-up of 6 steps" in note
