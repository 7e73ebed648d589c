"""GET /api/train/stream as the /train page uses it."""

import pytest

from tests.strict_json import sse_events

SMALL = {"steps": 4, "lag": 6, "hidden_size": 8, "batch_size": 4}


def test_stream_sends_meta_then_steps_of_every_cell_then_done(client):
    response = client.get("/api/train/stream", params=SMALL)
    assert response.status_code == 200
    events = sse_events(response)  # strict JSON throughout
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "done"
    meta = events[0][1]
    assert meta["cells"] == ["rnn", "lstm", "gru"] and meta["seq_len"] == 7
    assert set(meta["figures"]) >= {"loss", "accuracy", "grad_norm", "heatmap_lstm"}
    steps = [data for name, data in events if name == "step"]
    assert len(steps) == 3 * 4
    for cell in ("rnn", "lstm", "gru"):
        assert [s["step"] for s in steps if s["cell"] == cell] == [1, 2, 3, 4]
    for step in steps:
        assert {"loss", "accuracy", "grad_norm", "grad_norm_clipped", "time_steps",
                "grad_norms"} <= set(step)
        assert 0 <= step["accuracy"] <= 1
        assert step["grad_norm_clipped"] <= min(step["grad_norm"], 1.0) * (1 + 1e-6)
        assert len(step["time_steps"]) == len(step["grad_norms"]) == 7
    assert events[-1][1]["reason"] == "finished"


def test_the_regression_task_has_no_accuracy(client):
    events = sse_events(client.get("/api/train/stream",
                                   params={**SMALL, "task": "adding", "cells": "gru"}))
    steps = [data for name, data in events if name == "step"]
    assert steps and all("accuracy" not in step for step in steps)
    assert "accuracy" not in events[0][1]["figures"]


def test_same_seed_same_curves(client):
    first = sse_events(client.get("/api/train/stream", params={**SMALL, "seed": 7}))
    again = sse_events(client.get("/api/train/stream", params={**SMALL, "seed": 7}))
    losses = [[d["loss"] for n, d in run if n == "step"] for run in (first, again)]
    assert losses[0] == losses[1]


def test_a_diverging_model_is_reported_and_the_others_go_on(client):
    params = {**SMALL, "steps": 30, "optimizer": "sgd", "lr": 10, "clip": 0,
              "nonlinearity": "relu", "cells": "rnn,lstm"}
    events = sse_events(client.get("/api/train/stream", params=params))
    diverged = [data for name, data in events if name == "diverged"]
    assert diverged and diverged[0]["cell"] == "rnn"
    assert f"diverged at step {diverged[0]['step']}" in diverged[0]["message"]
    rnn_steps = [d["step"] for n, d in events if n == "step" and d["cell"] == "rnn"]
    assert max(rnn_steps) == diverged[0]["step"], "the diverged model stops"
    lstm_steps = [d["step"] for n, d in events if n == "step" and d["cell"] == "lstm"]
    assert max(lstm_steps) == 30, "the other model goes on"
    assert events[-1][0] == "done"


@pytest.mark.parametrize("task", ["temporal_order", "adding"])
def test_every_task_streams(client, task):
    events = sse_events(client.get("/api/train/stream",
                                   params={**SMALL, "task": task, "lag": 12}))
    assert events[-1][0] == "done"
