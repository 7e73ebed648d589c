"""The edge-of-chaos view (view=chaos) through the API: strict JSON, the exponents' shape and
order, -inf as a result (not an overflow), the work budget, the phase diagram streamed row by
row as `partial` events, and /explore's largest exponent."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gradient_flow_lab.app import progress
from gradient_flow_lab.app.schemas import (
    WORK_BUDGET,
    SimulationConfig,
    SimulationQuery,
    chaos_plan,
    view_work,
)
from gradient_flow_lab.app.views.chaos import RATE_THRESHOLD, SIGN_THRESHOLD
from tests.strict_json import post_json, sse_events

FIGURES = {"slope", "spectrum", "fan", "phase_input_scale"}


def chaos(client, body: dict, status: int = 200):
    return post_json(client, "/api/simulate?view=chaos", body, status=status)


def test_the_result_carries_sorted_exponents_per_layer_and_four_figures(client):
    document = chaos(client, {"num_layers": 2, "hidden_size": 16, "seq_len": 60})
    assert set(document["figures"]) == FIGURES
    exponents = np.array(document["series"]["lyapunov_exponents"], dtype=float)
    assert exponents.shape == (2, 16)  # (layers, n): all 16 exponents of each layer
    assert np.all(np.diff(exponents, axis=1) <= 0), "each row sorted descending"
    assert not np.any(document["series"]["lyapunov_minus_infinity"])
    summary = document["summary"]
    assert summary["lyapunov_largest"] == pytest.approx(exponents[-1, 0])  # the top layer's
    assert summary["lyapunov_factor_per_step"] == pytest.approx(np.exp(exponents[-1, 0]))
    assert summary["warmup"] == 6 and summary["steps_averaged"] == 54
    assert document["nonfinite"] == {}
    fan = np.array(document["series"]["singular_values_log10"]["log10"], dtype=float)
    assert fan.shape == (60, 16) and np.all(np.diff(fan, axis=1) <= 1e-12)
    np.testing.assert_allclose(fan[-1], 0.0, atol=1e-12)  # dh_T-1/dh_T-1 = I
    phase = document["series"]["phase"]["input_scale"]
    assert np.array(phase["largest"], dtype=float).shape == (9, 9)


def test_the_spectrum_is_capped_at_32_exponents(client):
    document = chaos(client, {"cell": "lstm", "hidden_size": 24, "seq_len": 30})
    exponents = document["series"]["lyapunov_exponents"]
    assert len(exponents[0]) == 32 and document["summary"]["state_size"] == 48
    assert "top 32 of 48" in document["figures"]["spectrum"]["layout"]["title"]["text"]
    assert set(document["figures"]) == FIGURES | {"phase_forget_bias"}


def test_minus_infinity_is_a_result_marked_in_a_mask_not_an_overflow(client):
    # A relu rnn whose units die: directions mapped exactly to 0 have exponent -inf.
    document = chaos(client, {"nonlinearity": "relu", "hidden_size": 8, "seq_len": 30})
    exponents = document["series"]["lyapunov_exponents"][0]
    mask = document["series"]["lyapunov_minus_infinity"][0]
    assert any(mask), "this network has dead directions"
    assert [value is None for value in exponents] == mask, "null exactly where -inf"
    assert all(value is not None for value, dead in zip(exponents, mask, strict=True)
               if not dead)
    assert not any(key.startswith("series.lyapunov") for key in document["nonfinite"]), \
        "-inf is a true result, not reported as an overflow"
    spectrum = document["figures"]["spectrum"]
    marks = [trace for trace in spectrum["data"] if trace.get("text")]
    assert marks and set(marks[0]["text"]) == {"−∞"}
    assert len(marks[0]["x"]) == sum(mask)


def test_a_whole_spectrum_of_minus_infinity_gives_no_prediction_check(client):
    document = chaos(client, {"nonlinearity": "relu", "hidden_size": 4, "seq_len": 30})
    summary = document["summary"]
    assert summary["lyapunov_largest"] is None and summary["lyapunov_minus_infinity"] is True
    assert "cut to zero" in summary["lyapunov_prediction"]
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses["sign"] == "n/a"


@pytest.mark.parametrize("weight_scale,sign", [(0.8, -1), (3.0, 1)])
def test_the_sign_of_the_largest_exponent_predicts_the_gradient_curve(client, weight_scale,
                                                                      sign):
    document = chaos(client, {"weight_scale": weight_scale, "seq_len": 100})
    largest = document["summary"]["lyapunov_largest"]
    assert np.sign(largest) == sign and abs(largest) >= RATE_THRESHOLD
    norms = document["series"]["grad_norms"][-1]
    # growth going back: the gradient at t = 0 against the one at the last step
    assert np.sign(np.log(norms[0] / norms[-1])) == sign
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses == {"finite": "pass", "sign": "pass", "rate": "pass"}


def test_the_checks_say_when_they_cannot_judge(client):
    document = chaos(client, {"weight_scale": 0.8, "seq_len": 100, "loss_at": "all"})
    checks = {c["id"]: c for c in document["checks"]}
    assert checks["sign"]["status"] == "n/a" and "every step" in checks["sign"]["detail"]
    edge = chaos(client, {"weight_scale": 1.0, "input_scale": 0.0, "seq_len": 60,
                          "init": "orthogonal"})
    largest = edge["summary"]["lyapunov_largest"]
    assert abs(largest) < SIGN_THRESHOLD  # an orthogonal map at h = 0: λ₁ = ln 1 = 0
    sign = next(c for c in edge["checks"] if c["id"] == "sign")
    assert sign["status"] == "n/a" and str(SIGN_THRESHOLD) in sign["detail"]


def test_an_overflowing_run_is_answered_with_its_checks(client):
    document = chaos(client, {"nonlinearity": "relu", "weight_scale": 10.0, "seq_len": 400,
                              "hidden_size": 8})
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses["finite"] == "fail" and statuses["sign"] == "n/a"
    assert "overflowed" in document["summary"]["lyapunov_prediction"]


def test_an_oversized_chaos_request_is_refused_before_any_work(client):
    body = {"seq_len": 1000, "hidden_size": 128}
    assert view_work(SimulationConfig(**body), "chaos") > WORK_BUDGET
    for response in (client.post("/api/simulate?view=chaos", json=body),
                     client.get("/api/simulate/stream", params={**body, "view": "chaos"})):
        assert response.status_code == 422
        message = response.json()["detail"][0]["msg"]
        assert "'chaos'" in message and "budget" in message and "phase diagram" in message
    # the same network is within the budget of a view that computes less
    assert client.post("/api/simulate?view=explore", json=body).status_code == 200


@pytest.mark.parametrize("body", [{}, {"seq_len": 1000}, {"cell": "lstm", "seq_len": 200},
                                  {"cell": "gru", "hidden_size": 40, "num_layers": 2}])
def test_the_plan_fits_the_budget_and_shortens_the_phase_runs_to_do_so(body):
    config = SimulationConfig(**body)
    plan = chaos_plan(config)
    assert 16 <= plan.grid_steps <= min(config.seq_len, 100)
    assert view_work(config, "chaos") <= WORK_BUDGET
    SimulationQuery(view="chaos", **body)  # accepted


def test_the_stream_sends_the_phase_diagram_row_by_row_before_the_result(client):
    response = client.get("/api/simulate/stream", params={"view": "chaos", "seq_len": 40})
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-1] == "result"
    partials = [data for name, data in events if name == "partial"]
    assert len(partials) == 9 and all(p["name"] == "phase" for p in partials)
    assert [p["data"]["row"] for p in partials] == list(range(9))
    assert [p["data"]["figure"]["layout"]["meta"]["rows_done"] for p in partials] == \
        list(range(1, 10))
    assert max(i for i, name in enumerate(names) if name == "partial") < names.index("result")
    result = events[-1][1]
    grid = result["series"]["phase"]["input_scale"]["largest"]
    assert [p["data"]["largest"] for p in partials] == grid


def test_an_lstm_streams_both_panels(client):
    response = client.get("/api/simulate/stream", params={"view": "chaos", "cell": "lstm",
                                                          "seq_len": 30})
    panels = [data["data"]["panel"] for name, data in sse_events(response) if name == "partial"]
    assert panels == ["input_scale"] * 7 + ["forget_bias"] * 7


def test_partial_reaches_only_its_listener_and_stops_with_the_stream():
    heard = []
    progress.partial("phase", {"row": 0})  # outside a block: nothing happens
    stop = threading.Event()
    with progress.reporting(lambda kind, value: heard.append((kind, value)), stop):
        progress.partial("phase", {"row": 1})
        stop.set()
        with pytest.raises(progress.Stopped):
            progress.partial("phase", {"row": 2})
    assert heard == [("partial", ("phase", {"row": 1}))]


@pytest.mark.parametrize("weight_scale,sign", [(0.5, -1), (3.0, 1)])
def test_explore_names_the_largest_exponent_and_what_it_predicts(client, weight_scale, sign):
    summary = post_json(client, "/api/simulate", {"weight_scale": weight_scale,
                                                  "seq_len": 100})["summary"]
    assert np.sign(summary["lyapunov_largest"]) == sign
    assert ("vanishes" if sign < 0 else "explodes") in summary["lyapunov_prediction"]
    assert summary["lyapunov_minus_infinity"] is False
