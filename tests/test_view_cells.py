"""The /cells view through the API: figures, the carry gain and the constant error carousel."""

import math

import pytest

from tests.strict_json import post_json, sse_events

FIGURES = {"gates", "state", "gradients", "carry"}
CEC = {"cell": "lstm", "forget_bias": 10, "seq_len": 200, "input_scale": 0, "weight_scale": 0}


def post_cells(client, body: dict) -> dict:
    return post_json(client, "/api/simulate", body, params={"view": "cells"})


def statuses(document: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in document["checks"]}


@pytest.mark.parametrize("cell,gates", [("lstm", "ifgo"), ("gru", "rzn")])
def test_post_returns_strict_json_with_the_cell_figures(client, cell, gates):
    document = post_cells(client, {"cell": cell, "seq_len": 30, "hidden_size": 8})
    assert document["view"] == "cells"
    assert set(document["figures"]) == FIGURES
    summary = document["summary"]
    assert summary["cell"] == cell and summary["cell_substituted"] is False
    assert summary["carry_gate"] == {"lstm": "f", "gru": "z"}[cell]
    assert set(summary["mean_gates"]) == set(gates)
    assert 0 < summary["mean_carry_gate"] < 1
    # one panel of three traces (band max, band min, mean) per gate
    assert len(document["figures"]["gates"]["data"]) == 3 * len(gates)
    series = document["series"]
    assert len(series["carry_path"][0]) == 30
    assert (series["grad_cell"] is None) == (cell == "gru")
    ids = statuses(document)
    assert {"cec", "carry_path", "carry_bias", "finite"} <= set(ids)
    assert ids["carry_path"] == "pass", "the carry-only gradient is error × ∏gate, exactly"
    if cell == "gru":
        assert ids["cec"] == "n/a"


def test_rnn_is_shown_as_lstm_and_says_so(client):
    document = post_cells(client, {"cell": "rnn", "seq_len": 20})
    assert document["summary"]["cell"] == "lstm"
    assert document["summary"]["cell_substituted"] is True
    assert "lstm" in document["summary"]["note"]


def test_large_forget_bias_keeps_the_carry_gain_near_one_and_the_cec_check_passes(client):
    document = post_cells(client, CEC)
    summary = document["summary"]
    sigma = 1 / (1 + math.exp(-10))
    assert summary["mean_carry_gate"] == pytest.approx(sigma, rel=1e-12)
    assert summary["carry_gain_total"] == pytest.approx(sigma ** 199, rel=1e-9)
    assert summary["carry_gain_total"] > 0.99
    gain = document["series"]["carry_gain_mean"][0]
    assert min(gain) > 0.99 and gain[-1] == 1.0
    # The error on c is carried back unchanged (to within f^199 = 0.991).
    grad_cell = document["series"]["grad_cell"][0]
    assert max(grad_cell) / min(grad_cell) < 1.01
    carry = document["series"]["carry_path"][0]
    assert carry[0] / carry[-1] == pytest.approx(sigma ** 199, rel=1e-9)
    ids = statuses(document)
    assert ids["cec"] == "pass"
    assert ids["carry_bias"] == "pass"
    # The reference line σ(b_f)^(T-1-t) is drawn in the carry figure.
    names = [trace.get("name", "") for trace in document["figures"]["carry"]["data"]]
    assert any(name.startswith("σ(b_f = 10)") for name in names)


def test_real_inputs_keep_the_carry_path_flat_but_not_the_whole_cell_gradient(client):
    document = post_cells(client, {"cell": "lstm", "forget_bias": 10, "seq_len": 200})
    carry = document["series"]["carry_path"][0]
    assert 0.95 < carry[0] / carry[-1] <= 1.0, "carry-only gradient visibly flat"
    assert statuses(document)["cec"] == "n/a", "inputs and W_hh feed c: premise not met"


def test_negative_forget_bias_makes_the_carry_gain_tiny(client):
    document = post_cells(client, {"cell": "lstm", "forget_bias": -5, "seq_len": 50})
    summary = document["summary"]
    assert summary["mean_carry_gate"] < 0.05
    assert summary["carry_gain_total_log10"] < -50
    assert summary["carry_gain_total"] < 1e-50
    assert statuses(document)["cec"] == "n/a"


def test_gain_is_reported_in_log10_where_the_product_underflows(client):
    document = post_cells(client, {"cell": "lstm", "forget_bias": -10, "seq_len": 400,
                                   "input_scale": 0})
    summary = document["summary"]
    assert summary["carry_gain_total"] == 0.0  # below float64's smallest number
    expected = 399 * math.log10(1 / (1 + math.exp(10)))
    assert summary["carry_gain_total_log10"] == pytest.approx(expected, rel=1e-9)
    assert statuses(document)["carry_bias"] == "pass"


def test_gru_at_rest_halves_the_carried_error_each_step(client):
    document = post_cells(client, {"cell": "gru", "seq_len": 60, "input_scale": 0})
    summary = document["summary"]
    assert summary["mean_carry_gate"] == pytest.approx(0.5)
    assert summary["carry_gain_reference"] == pytest.approx(0.5 ** 59)
    assert statuses(document)["carry_bias"] == "pass"


def test_stream_ends_with_the_cells_result(client):
    response = client.get("/api/simulate/stream",
                          params={"cell": "lstm", "seq_len": 40, "view": "cells"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "result"
    assert "backward" in names
    result = events[-1][1]
    assert result["view"] == "cells"
    assert set(result["figures"]) == FIGURES


def test_out_of_range_forget_bias_is_a_422_naming_the_field(client):
    response = client.post("/api/simulate", params={"view": "cells"},
                           json={"cell": "lstm", "forget_bias": 20})
    assert response.status_code == 422
    assert "forget_bias must be between -10 and 10" in response.text
