"""The BPTT and compare views through the API: strict JSON, the figures each page draws, and the
numbers the pages claim (the truncation band, the relative error, three cells)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.strict_json import post_json, sse_events

BPTT_FIGURES = {"unrolled", "reach", "contributions", "grad_norms", "factors"}
COMPARE_FIGURES = {"grad_norms", "retention"}




def post(client, view: str, **config):
    return post_json(client, f"/api/simulate?view={view}", config)


def test_bptt_returns_strict_json_with_its_figures(client):
    document = post(client, "bptt", loss_at="all", truncation=10)
    assert document["view"] == "bptt"
    assert set(document["figures"]) == BPTT_FIGURES
    summary = document["summary"]
    assert summary["truncation_k"] == 10
    assert 0 < summary["relative_error"] < 1
    assert -1 <= summary["cosine"] <= 1
    ids = {c["id"]: c["status"] for c in document["checks"]}
    assert ids["truncation_reach"] == "pass"
    assert "finite" in ids


def test_truncated_reach_is_zero_outside_the_band(client):
    k, seq_len = 7, 40
    document = post(client, "bptt", loss_at="all", truncation=k, seq_len=seq_len,
                    num_layers=2)
    for name, chunked in (("reach_truncated", True), ("reach_full", False)):
        reach = document["series"][name]
        loss_steps = np.array(reach["loss_steps"])[:, None]  # (N, 1)
        states = np.array(reach["state_steps"])[None, :]  # (1, n)
        norms = np.array(reach["norms"], dtype=float)  # (N, n)
        assert norms.shape == (loss_steps.size, states.size)
        start = (loss_steps // k) * k if chunked else 0
        band = (states <= loss_steps) & (states >= start)
        assert np.all(norms[~band] == 0), f"{name}: gradient outside the band"
        assert np.all(norms[band] > 0), f"{name}: a state inside the band got no gradient"
    assert document["summary"]["reach_layer"] == 1


def test_truncation_zero_is_full_bptt_alone(client):
    """k = 0 means full BPTT and nothing else: no truncated curve, panel or comparison (it used
    to compare against a silent k = 10, so lessons about full BPTT drew truncated curves)."""
    document = post(client, "bptt", truncation=0, seq_len=30)
    summary, figures = document["summary"], document["figures"]
    assert summary["truncation_k"] is None and summary["truncation_off"] is True
    assert summary["relative_error"] is None and summary["cosine"] is None
    assert document["series"]["grad_norms_truncated"] is None
    for name in ("grad_norms", "contributions"):
        names = [trace.get("name") for trace in figures[name]["data"]]
        assert names == ["full BPTT"], (name, names)
    assert [trace["name"] for trace in figures["reach"]["data"]] == ["full BPTT"]
    assert "shapes" not in figures["unrolled"]["layout"]
    assert "k = 0" in summary["comparison_sentence"]
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses["truncation_reach"] == "n/a"
    truncated = post(client, "bptt", truncation=10, seq_len=30)
    names = [trace.get("name") for trace in truncated["figures"]["grad_norms"]["data"]]
    assert names == ["full BPTT", "truncated, k = 10"]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_relative_error_is_zero_when_truncation_covers_the_sequence(client, cell):
    summary = post(client, "bptt", cell=cell, seq_len=30, truncation=30, loss_at="all")["summary"]
    assert summary["truncation_is_exact"] is True
    assert summary["relative_error"] == 0.0
    assert summary["cosine"] == pytest.approx(1.0, abs=1e-12)


def test_truncation_shorter_than_the_sequence_changes_the_gradient(client):
    summary = post(client, "bptt", seq_len=30, truncation=29, loss_at="all")["summary"]
    assert summary["relative_error"] > 0


def test_unrolled_network_subsamples_long_sequences(client):
    document = post(client, "bptt", seq_len=500, hidden_size=8, truncation=50)
    steps = document["series"]["unrolled_steps"]
    assert len(steps) == 60 and steps[0] == 0 and steps[-1] == 499
    assert document["summary"]["unrolled_subsampled"] is True
    assert "60 of 500" in document["figures"]["unrolled"]["layout"]["title"]["text"]


def test_compare_runs_three_cells(client):
    document = post(client, "compare")
    assert set(document["figures"]) == COMPARE_FIGURES
    assert set(document["summary"]["cells"]) == {"rnn", "lstm", "gru"}
    names = [trace["name"] for trace in document["figures"]["grad_norms"]["data"]]
    assert {"rnn", "lstm", "gru"} <= set(names)
    ids = {c["id"]: c for c in document["checks"]}
    lstm, rnn = (document["summary"]["cells"][c]["retention"] for c in ("lstm", "rnn"))
    assert ids["lstm_keeps_more"]["status"] == ("pass" if lstm > rnn else "fail")


def test_compare_budget_counts_the_lstm(client):
    response = client.post("/api/simulate?view=compare", json={"seq_len": 1000,
                                                               "hidden_size": 256})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "budget" in message and "compare" in message


def test_bptt_stream_ends_with_a_result(client):
    response = client.get("/api/simulate/stream",
                          params={"view": "bptt", "seq_len": 20, "truncation": 5})
    assert response.status_code == 200
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "result"
    assert "backward" in names
    result = events[-1][1]
    assert set(result["figures"]) == BPTT_FIGURES
    assert result["summary"]["truncation_k"] == 5


def test_growth_check_does_not_apply_with_a_loss_at_every_step(client):
    checks = {c["id"]: c for c in post(client, "bptt", loss_at="all")["checks"]}
    assert checks["growth"]["status"] == "n/a"
    checks = {c["id"]: c for c in post(client, "bptt", loss_at="last")["checks"]}
    assert checks["growth"]["status"] in ("pass", "fail")
