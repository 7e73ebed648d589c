"""Extreme values are results: each input below once showed a wrong value, a stand-in level, a
false alarm or a 500. Each test states the input and its right value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.strict_json import strict_loads

OVERFLOW_PRESET = {"cell": "rnn", "nonlinearity": "relu", "weight_scale": 10, "seq_len": 500,
                   "init": "orthogonal"}


def post(client, body: dict | str, view: str = "explore"):
    if isinstance(body, str):
        response = client.post(f"/api/simulate?view={view}", content=body,
                               headers={"content-type": "application/json"})
    else:
        response = client.post(f"/api/simulate?view={view}", json=body)
    return response.status_code, strict_loads(response.text)


def all_tick_labels(document: dict) -> list[str]:
    labels = []
    for figure in document["figures"].values():
        for name, axis in figure["layout"].items():
            if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
                labels += [str(text) for text in axis.get("ticktext", [])]
    return labels


def notes(document: dict, figure: str) -> list[str]:
    return [a["text"] for a in document["figures"][figure]["layout"].get("annotations", [])]


# ---------------------------------------------------------------- 2. no stand-in values


def test_a_bound_that_is_exactly_zero_is_a_gap_not_1e_minus_300(client):
    """Behind a truncation cut nothing flows back: the bound is 0 for t < 40, drawn as a gap, and
    the axis spans the real curve (about 0.004 to 0.57), not 300 decades."""
    status, document = post(client, {"cell": "rnn", "seq_len": 50, "truncation": 10})
    assert status == 200
    figure = document["figures"]["grad_norms"]
    bound = next(t for t in figure["data"] if t["name"].startswith("Pascanu"))
    assert bound["y"][:40] == [None] * 40
    assert all(v is not None for v in bound["y"][40:])
    low, high = figure["layout"]["yaxis"]["range"]
    assert -4 < low and high < 1.5, (low, high)
    assert document["nonfinite"] == {}  # a gap for an exact 0 is not an overflow


def test_a_bound_beyond_float64_is_drawn_where_it_is_and_marked_off_the_chart(client):
    """weight_scale 10, T = 1000: the bound reaches about 10^998. It is kept as log10 (never
    clamped at 1e300), and a note inside the plot says it leaves the chart, and how far."""
    status, document = post(client, {"weight_scale": 10, "seq_len": 1000})
    assert status == 200
    figure = document["figures"]["grad_norms"]
    bound = next(t for t in figure["data"] if t["name"].startswith("Pascanu"))
    assert max(v for v in bound["y"] if v is not None) > 900
    assert max(document["series"]["bound_log10"]) > 900
    assert any("off the chart above" in text and "e+99" in text
               for text in notes(document, "grad_norms"))


def test_no_tick_label_is_built_from_a_non_finite_number(client):
    for body in ({"weight_scale": 10, "seq_len": 1000}, OVERFLOW_PRESET, {"weight_scale": 0},
                 {"seq_len": 1}):
        for view in ("explore", "bptt", "cells", "compare"):
            status, document = post(client, body, view)
            assert status == 200
            for label in all_tick_labels(document):
                assert not any(word in label.lower() for word in ("nan", "inf")), (body, label)


# ---------------------------------------------------------------- 3. bodies a parser allows


@pytest.mark.parametrize("body, field", [
    ('{"weight_scale": NaN}', "weight_scale"),
    ('{"weight_scale": Infinity}', "weight_scale"),
    ('{"clip": -Infinity}', "clip"),
    ('{"seq_len": 1e400}', "seq_len"),
    ('{"cell": "\\udc80"}', "cell"),
])
def test_non_finite_or_unencodable_body_values_are_a_422_naming_the_field(client, body, field):
    status, document = post(client, body)
    assert status == 422
    assert [d["field"] for d in document["detail"]] == [field]
    assert field in document["detail"][0]["msg"]


# ---------------------------------------------------------------- 4. gaps are not overflows


def test_the_default_request_reports_no_non_finite_value(client):
    """The t = 0 share of dloss/dW_hh is exactly 0 (h_-1 = 0): a gap on the log axis, not an
    overflow."""
    for view in ("explore", "bptt", "cells", "compare"):
        status, document = post(client, {}, view)
        assert status == 200
        assert document["nonfinite"] == {}, (view, document["nonfinite"])
    status, document = post(client, {})
    shares = document["figures"]["contributions"]["data"][0]["y"]
    assert shares[0] is None and all(v is not None for v in shares[1:])


def test_overflow_is_still_reported(client):
    status, document = post(client, OVERFLOW_PRESET)
    assert status == 200
    assert document["summary"]["overflow_step"] is not None
    assert document["nonfinite"].get("figures.grad_norms.data[0].y", 0) > 0


# ---------------------------------------------------------------- 6. checks on nothing


def by_id(document: dict) -> dict[str, dict]:
    return {check["id"]: check for check in document["checks"]}


def test_checks_after_an_overflow_do_not_pass_on_nothing(client):
    status, document = post(client, OVERFLOW_PRESET)
    checks = by_id(document)
    assert checks["finite"]["status"] == "fail"
    assert checks["bound"]["status"] == "n/a"  # was green, "checked at 0 of 500 steps"
    assert checks["growth"]["status"] == "n/a"  # was green with "largest = 1"


def test_compare_of_one_step_has_nothing_to_compare(client):
    status, document = post(client, {"seq_len": 1}, "compare")
    checks = by_id(document)
    assert checks["lstm_keeps_more"]["status"] == "n/a"
    assert checks["gru_keeps_more"]["status"] == "n/a"


def test_an_exploding_lstm_does_not_count_as_keeping_gradient(client):
    """sigmoid, weight_scale 10, T = 200: the LSTM's gradient grows about 1e21-fold back to
    t = 0. That is an explosion, which the 'keeps more' check must not reward."""
    status, document = post(client, {"nonlinearity": "sigmoid", "weight_scale": 10,
                                     "seq_len": 200}, "compare")
    checks = by_id(document)
    assert checks["lstm_keeps_more"]["status"] != "pass"
    assert "exploding" in checks["lstm_keeps_more"]["detail"]
    retention = document["summary"]["cells"]["lstm"]["retention"]
    assert retention > 1e10


def test_the_boundary_gamma_sigma_equal_to_one_states_its_tolerance(client):
    status, document = post(client, {"nonlinearity": "relu", "weight_scale": 1})
    checks = by_id(document)
    assert checks["growth"]["status"] == "pass"
    assert "1e-09" in checks["growth"]["detail"]
    assert checks["vanish"]["status"] == "n/a"


# ---------------------------------------------------------------- 7. blank plots and edges


def test_a_plot_with_no_finite_value_says_so_inside_it(client):
    status, document = post(client, OVERFLOW_PRESET)
    for name in ("grad_norms", "contributions"):
        assert any(text.startswith("No finite value to draw") for text in notes(document, name))


def test_one_step_is_drawn_with_a_marker_and_one_tick(client):
    status, document = post(client, {"seq_len": 1})
    figure = document["figures"]["grad_norms"]
    line = figure["data"][0]
    assert len(line["y"]) == 1 and line["y"][0] is not None
    assert "markers" in line["mode"]
    assert figure["layout"]["xaxis"]["tickvals"] == [0]


def test_weight_scale_zero_says_the_gradient_is_exactly_zero(client):
    """W_hh = 0: no gradient reaches back past the last step; the zeros are named, not hidden."""
    status, document = post(client, {"weight_scale": 0})
    texts = notes(document, "grad_norms")
    assert any("exactly 0 at 49 of 50" in text for text in texts), texts
    line = document["figures"]["grad_norms"]["data"][0]
    assert "markers" in line["mode"]


def test_hover_and_csv_values_are_true_values(client):
    status, document = post(client, {"seq_len": 20})
    line = document["figures"]["grad_norms"]["data"][0]
    norms = document["series"]["grad_norms"][0]
    for y, (text, value), norm in zip(line["y"], line["customdata"], norms, strict=True):
        assert value == pytest.approx(norm, rel=1e-12)
        assert y == pytest.approx(math.log10(norm), rel=1e-12)
        assert float(text) == pytest.approx(norm, rel=1e-3)
    assert "customdata[0]" in line["hovertemplate"]
    assert np.isfinite(norms).all()


# ---------------------------------------------------------------- 1. norms of huge finite values


RELU_EXPLODING = {"cell": "rnn", "nonlinearity": "relu", "init": "orthogonal", "weight_scale": 10,
                  "seq_len": 200}


def test_finite_gradients_above_1e154_are_not_shown_as_overflow(client):
    """Every share of dloss/dW_hh is finite (the largest about 3.93e156), the global norm about
    1.55e157; squaring them overflowed and the page said the norm overflowed."""
    status, document = post(client, {**RELU_EXPLODING, "clip": 1})
    assert status == 200
    assert document["nonfinite"] == {}
    assert document["summary"]["overflow_step"] is None
    shares = document["series"]["contribution_norms"][0]
    assert shares[0] == 0.0 and all(s > 0 for s in shares[1:])
    assert max(shares) == pytest.approx(3.93e156, rel=2e-3)
    clipping = document["summary"]["clipping"]
    assert clipping["norm"] == pytest.approx(1.5538e157, rel=1e-4)
    assert clipping["clipped_norm"] == pytest.approx(1.0, rel=1e-6)
    assert by_id(document)["clip"]["status"] == "pass"


def test_global_norm_is_overflow_safe_and_clip_grad_norm_still_matches_pytorch():
    from gradient_flow_lab import engine

    grads = {"a": np.full((3, 4), 1e200), "b": np.array([-1e200, 0.0])}
    assert engine.global_norm(grads) == pytest.approx(1e200 * math.sqrt(13), rel=1e-12)
    assert engine.global_norm({"a": np.full(4, 1e-200)}) == pytest.approx(2e-200, rel=1e-12)
    assert engine.global_norm({"a": np.array([1.0, np.inf])}) == math.inf
    assert math.isnan(engine.global_norm({"a": np.array([np.inf, np.nan])}))
    assert engine.global_norm({"a": np.zeros(3)}) == 0.0
    # PyTorch's clip_grad_norm_ squares without scaling: its total norm is inf here, and so is
    # ours (the comparison with torch itself is in test_engine_torch.py).
    _, total = engine.clip_grad_norm(grads, 1.0)
    assert total == math.inf


def test_contribution_norms_of_huge_finite_shares_are_finite():
    from gradient_flow_lab import engine

    params = engine.init_params("rnn", 4, 16, 8, init="orthogonal", scale=10.0, seed=0)
    inputs, targets = engine.random_batch(200, 2, 4, 8, seed=1)
    trace = engine.run("rnn", params, inputs, targets, nonlinearity="relu")
    norms = engine.contribution_norms(trace)[0]
    direct = [np.linalg.norm(m / np.max(np.abs(m))) * np.max(np.abs(m)) if np.any(m) else 0.0
              for m in engine.weight_grad_contributions(trace, 0)]
    assert np.all(np.isfinite(norms)) and np.max(norms) > 1e160
    np.testing.assert_allclose(norms, direct, rtol=1e-10)


# ---------------------------------------------------------------- 5. no warnings, any input


def test_activations_and_derivatives_are_warning_free_over_all_of_float64():
    """pytest turns warnings into errors here: tanh'(1e308) warned 'overflow in multiply'."""
    from gradient_flow_lab import engine

    biggest = np.finfo(float).max
    x = np.array([-np.inf, -biggest, -1e308, -1e154, -710.0, -1.0, -5e-324, 0.0, 5e-324, 1.0,
                  710.0, 1e154, 1e308, biggest, np.inf, np.nan])
    for name in ("sigmoid", "tanh", "relu"):
        values = engine.activation(name, x)
        slopes = engine.activation_grad(name, x)
        engine.compose(name, x, 3)
        assert np.isnan(values[-1])
        # nan in, nan out; relu's slope is (x > 0), 0 at nan, as in PyTorch's backward
        assert np.isnan(slopes[-1]) if name != "relu" else slopes[-1] == 0.0
        assert np.all(np.isfinite(slopes[:-1]))
    assert engine.activation_grad("tanh", np.array([1e308]))[0] == 0.0
    assert engine.activation_grad("sigmoid", np.array([0.0]))[0] == 0.25
