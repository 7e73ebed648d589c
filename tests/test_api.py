"""The simulation API as a script or a notebook would use it."""


import pytest

from gradient_flow_lab.app import progress
from gradient_flow_lab.app.routers import api
from gradient_flow_lab.app.schemas import WORK_BUDGET, SimulationQuery
from tests.strict_json import post_json, sse_events


def test_post_simulate_returns_figures_summary_and_checks(client):
    document = post_json(client, "/api/simulate", {"seq_len": 40, "weight_scale": 0.9})
    assert document["config"]["seq_len"] == 40
    assert set(document["figures"]) == {"grad_norms", "layer_heatmap", "hidden_heatmap",
                                        "eigenvalues", "contributions"}
    norms = document["series"]["grad_norms"]
    assert len(norms) == 1 and len(norms[0]) == 40
    assert norms[0][0] < norms[0][-1], "tanh with scale 0.9 must vanish going back"
    statuses = {c["id"]: c["status"] for c in document["checks"]}
    assert statuses["vanish"] == "pass" and statuses["bound"] == "pass"
    assert document["summary"]["gamma_sigma"] == pytest.approx(0.9)


def test_defaults_apply_when_the_body_is_empty(client):
    assert post_json(client, "/api/simulate", {})["config"]["cell"] == "rnn"


def test_stream_sends_meta_then_backward_in_time_order_then_result(client):
    response = client.get("/api/simulate/stream", params={"seq_len": 100, "num_layers": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "result"
    assert events[0][1]["config"]["seq_len"] == 100 and events[0][1]["config"]["num_layers"] == 2
    # the page's status line says "starting" at once, before the first step of the sweep
    assert events[1] == ("progress", {"stage": "starting", "fraction": 0.0}), events[1]
    steps = [t for name, data in events if name == "backward" for t in data["steps"]]
    assert steps == list(range(99, -1, -1)), "the backward sweep goes from T-1 down to 0"
    result = events[-1][1]
    backward_norms = {t: n for name, data in events if name == "backward"
                      for t, n in zip(data["steps"], data["norms"], strict=True)}
    assert backward_norms[0] == pytest.approx([row[0] for row in result["series"]["grad_norms"]])


@pytest.mark.parametrize("view,stages", [
    ("compare", {"rnn: forward and backward pass", "lstm: forward and backward pass",
                 "gru: forward and backward pass", "figures", "writing the result"}),
    ("explore", {"forward and backward pass", "products of Jacobians and per-step "
                 "contributions", "figures", "writing the result"}),
])
def test_a_long_run_reports_its_stages_while_it_computes(client, monkeypatch, view, stages):
    monkeypatch.setattr(api, "PROGRESS_EVERY", 0.001)  # every stage that lasts a moment
    response = client.get("/api/simulate/stream", params={
        "view": view, "seq_len": 1000, "hidden_size": 100, "num_layers": 2})
    events = sse_events(response)
    reports = [data for name, data in events if name == "progress"]
    assert reports[0]["stage"] == "starting"
    seen = [r["stage"] for r in reports[1:]]
    assert len(set(seen)) >= 2, f"a run of about a second reports more than its start: {seen}"
    assert set(seen) <= stages
    fractions = [r["fraction"] for r in reports]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] < 1


def test_progress_reports_reach_only_the_listener_of_their_block():
    heard = []
    progress.report("nobody listens", 0.1)  # outside a block: nothing happens
    progress.sweep_ready([[1.0]])
    with progress.reporting(lambda kind, value: heard.append((kind, value))):
        progress.report("inside", 0.5)
        progress.sweep_ready([[2.0]])
    progress.report("after", 0.9)
    assert heard == [("stage", ("inside", 0.5)), ("sweep", [[2.0]])]


@pytest.mark.parametrize("view", ["explore", "bptt", "cells", "compare"])
def test_the_sweep_is_streamed_while_the_figures_are_still_computing(client, monkeypatch, view):
    monkeypatch.setattr(api, "PROGRESS_EVERY", 0.0)  # show every stage at once
    response = client.get("/api/simulate/stream", params={
        "view": view, "seq_len": 1000, "hidden_size": 64, "num_layers": 2})
    events = sse_events(response)
    names = [name for name, _ in events]
    later = [data["stage"] for name, data in events[names.index("backward"):]
             if name == "progress"]
    assert later, "the sweep came only after every stage, with the result"
    steps = [t for name, data in events if name == "backward" for t in data["steps"]]
    assert steps == list(range(999, -1, -1)), "sent once, in time order"


def test_same_seed_same_numbers_different_seed_different(client):
    first = post_json(client, "/api/simulate", {"seed": 3})
    again = post_json(client, "/api/simulate", {"seed": 3})
    other = post_json(client, "/api/simulate", {"seed": 4})
    assert first["series"] == again["series"]
    assert first["series"]["grad_norms"] != other["series"]["grad_norms"]


@pytest.mark.parametrize("field,value,allowed", [
    ("seq_len", 5000, "between 1 and 1000"),
    ("seq_len", 0, "between 1 and 1000"),
    ("hidden_size", 1000, "between 1 and 256"),
    ("num_layers", 9, "between 1 and 4"),
    ("weight_scale", -1, "between 0 and 10"),
    ("weight_scale", "abc", "between 0 and 10"),
    ("clip", -0.5, "between 0 and 1000000"),
    ("cell", "transformer", "one of rnn, lstm, gru"),
    ("loss_at", "middle", "one of last, all"),
    ("seed", -1, "between 0 and"),
])
def test_out_of_range_fields_get_a_422_naming_field_and_range(client, field, value, allowed):
    for response in (client.post("/api/simulate", json={field: value}),
                     client.get("/api/simulate/stream", params={field: value})):
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert [d["field"] for d in detail] == [field], "each problem is said once"
        assert field in detail[0]["msg"] and allowed in detail[0]["msg"]


def test_work_budget_is_checked_before_any_numpy_runs(client):
    response = client.post("/api/simulate", json={"seq_len": 1000, "hidden_size": 256,
                                                  "batch_size": 32})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "budget" in message and f"{WORK_BUDGET:,}" in message


def test_overflow_is_a_result_marked_in_every_response(client):
    config = {"weight_scale": 10, "seq_len": 500, "nonlinearity": "relu", "init": "orthogonal"}
    document = post_json(client, "/api/simulate", config)
    overflow = document["summary"]["overflow_step"]
    assert isinstance(overflow, int) and 0 < overflow < 500
    assert document["nonfinite"], "the nulls that stand for inf/nan must be listed"
    assert {c["id"]: c["status"] for c in document["checks"]}["finite"] == "fail"
    # the forward pass overflowed, so the loss and every gradient are nan: shown as nulls that
    # are listed, never as zeros
    assert document["summary"]["loss"] is None
    assert "series.grad_norms" in document["nonfinite"]
    assert 0 not in document["series"]["grad_norms"][0]
    stream = client.get("/api/simulate/stream", params=config)
    events = sse_events(stream)  # parses every event strictly
    assert events[-1][1]["summary"]["overflow_step"] == overflow


def test_exploding_gradient_stays_a_number(client):
    document = post_json(client, "/api/simulate", {"weight_scale": 2.5, "seq_len": 200})
    first = document["summary"]["grad_norm_first"]
    assert first > 1e6 * document["summary"]["grad_norm_last"]


def test_clipping_reports_norm_before_and_after(client):
    document = post_json(client, "/api/simulate",
                         {"weight_scale": 2.5, "seq_len": 100, "clip": 1.0})
    clipping = document["summary"]["clipping"]
    assert clipping["norm"] > 1.0
    assert clipping["clipped_norm"] == pytest.approx(1.0, rel=1e-5)
    assert {c["id"]: c["status"] for c in document["checks"]}["clip"] == "pass"


def test_openapi_lists_the_configuration_fields(client):
    schema = client.get("/openapi.json").json()
    params = {p["name"] for p in schema["paths"]["/api/simulate/stream"]["get"]["parameters"]}
    assert {"cell", "nonlinearity", "seq_len", "num_layers", "hidden_size", "input_size",
            "batch_size", "weight_scale", "input_scale", "init", "forget_bias", "loss_at",
            "truncation", "clip", "seed"} <= params


def test_openapi_gives_every_query_parameter_its_schema(client):
    """The GET routes read the query string in one dependency: the document still lists every
    field, with its bounds, its choices and the 422."""
    schema = client.get("/openapi.json").json()
    for path in ("/api/simulate", "/api/simulate/stream"):
        operation = schema["paths"][path]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        assert set(params) == set(SimulationQuery.model_fields), path
        assert all(p["in"] == "query" and not p["required"] for p in params.values())
        assert params["seq_len"]["schema"]["maximum"] == 1000
        assert params["seq_len"]["schema"]["minimum"] == 1
        assert params["view"]["schema"]["enum"] == ["explore", "bptt", "cells", "compare", "chaos"]
        assert params["cell"]["description"] == "Recurrent cell type."
        assert "422" in operation["responses"]


@pytest.mark.parametrize("view,config", [
    ("compare", {"seq_len": 1000, "hidden_size": 256}),  # three cells: 8 gates in all
    ("bptt", {"seq_len": 1000, "hidden_size": 200, "cell": "lstm"}),  # two runs
    ("cells", {"seq_len": 1000, "hidden_size": 252, "cell": "rnn"}),  # shown as an lstm
])
def test_every_run_a_view_makes_counts_against_the_budget(client, view, config):
    for response in (client.post(f"/api/simulate?view={view}", json=config),
                     client.get("/api/simulate/stream", params={**config, "view": view})):
        assert response.status_code == 422
        assert "budget" in response.json()["detail"][0]["msg"]


def test_a_body_field_that_is_not_a_configuration_field_is_named_not_ignored(client):
    typo = client.post("/api/simulate", json={"seq_length": 50})
    assert typo.status_code == 422
    detail = typo.json()["detail"][0]
    assert detail["loc"] == ["body", "seq_length"] and "seq_len" in detail["msg"]
    view = client.post("/api/simulate", json={"view": "bptt"})
    assert view.status_code == 422 and "query string" in view.json()["detail"][0]["msg"]
    assert client.post("/api/simulate", json={"seq_len": 30}).status_code == 200
