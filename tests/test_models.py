"""Bring your own model: PyTorch models saved as .safetensors and .npz, uploaded through the API,
give the loss, ||d loss / d h_t|| and ||d h_T / d h_t|| of float64 autograd on the same weights
and inputs; bad files are refused with a message, store nothing and crash nothing."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gradient_flow_lab import engine
from gradient_flow_lab.app.main import app
from gradient_flow_lab.engine.health import with_readout
from tests.helpers import small_model_store

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
nn = torch.nn
MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


@pytest.fixture
def store(tmp_path):
    with small_model_store(tmp_path / "models", max_file_bytes=2_000_000) as store:
        yield store


@pytest.fixture
def api(store):
    with TestClient(app) as client:
        yield client


def torch_state_dict(cell, num_layers=2, input_size=3, hidden_size=5, head=3, seed=0,
                     nonlinearity="tanh"):
    torch.manual_seed(seed)
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    module = MODULES[cell](input_size, hidden_size, num_layers=num_layers, **kwargs)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    if head:
        linear = nn.Linear(hidden_size, head)
        state |= {f"head.{k}": v.detach().numpy() for k, v in linear.state_dict().items()}
    return state


def as_safetensors(state) -> bytes:
    return safetensors_numpy.save(state)


def as_npz(state) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()


def as_npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def upload(api, model_bytes, inputs_bytes=None, name="model.safetensors"):
    files = {"file": (name, model_bytes)}
    if inputs_bytes is not None:
        files["inputs"] = ("inputs.npy", inputs_bytes)
    return api.post("/api/models", files=files)


def stored_files(store):
    return sorted(p.name for p in store.directory.glob("*")) if store.directory.exists() else []


# ---- float64 autograd on the same weights ------------------------------------------------------

def torch_gold(cell, params, inputs, targets, nonlinearity="tanh"):
    """loss, ||d loss / d h_t|| (L, T) and ||d h_{T-1} / d h_t||_2 along each layer for sequence
    0 (L, T), by a step loop of nn.*Cell in float64 with retain_grad on every h_t."""
    num_layers = sum(key.startswith("weight_hh_l") for key in params)
    hidden_size = params["weight_hh_l0"].shape[1]
    T, B, _ = inputs.shape
    cells = []
    for layer in range(num_layers):
        fan_in = params[f"weight_ih_l{layer}"].shape[1]
        kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        step = CELLS[cell](fan_in, hidden_size, dtype=torch.float64, **kwargs)
        step.load_state_dict({n: torch.tensor(params[f"{n}_l{layer}"], dtype=torch.float64)
                              for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        cells.append(step)
    head = nn.Linear(hidden_size, params["head.weight"].shape[0], dtype=torch.float64)
    head.load_state_dict({"weight": torch.tensor(params["head.weight"]),
                          "bias": torch.tensor(params["head.bias"])})
    x = torch.tensor(inputs, dtype=torch.float64)
    h = [torch.zeros(B, hidden_size, dtype=torch.float64) for _ in cells]
    c = [torch.zeros(B, hidden_size, dtype=torch.float64) for _ in cells]
    hs = [[None] * T for _ in cells]
    cs = [[None] * T for _ in cells]
    layer_inputs = [[None] * T for _ in cells]
    logits = []
    for t in range(T):
        below = x[t]
        for layer, step in enumerate(cells):
            layer_inputs[layer][t] = below.detach()
            if cell == "lstm":
                h[layer], c[layer] = step(below, (h[layer], c[layer]))
                cs[layer][t] = c[layer].detach()
            else:
                h[layer] = step(below, h[layer])
            h[layer].retain_grad()
            hs[layer][t] = h[layer]
            below = h[layer]
        logits.append(head(below))
    loss_fn = nn.CrossEntropyLoss(reduction="sum", ignore_index=-1)
    stacked = torch.stack(logits)
    loss = loss_fn(stacked.reshape(-1, stacked.shape[-1]), torch.as_tensor(targets).reshape(-1))
    loss.backward()
    grad_norms = np.array([[np.linalg.norm(state.grad.numpy()) if state.grad is not None else 0.0
                            for state in layer] for layer in hs])
    jac = np.zeros((num_layers, T))
    for layer, step in enumerate(cells):
        for t in range(T):
            def last_from(h_t, layer=layer, t=t, step=step):
                state = (h_t, cs[layer][t][:1]) if cell == "lstm" else h_t
                for s in range(t + 1, T):
                    state = step(layer_inputs[layer][s][:1], state)
                return state[0] if cell == "lstm" else state
            start = hs[layer][t].detach()[:1]
            matrix = torch.autograd.functional.jacobian(last_from, start).reshape(
                hidden_size, hidden_size)
            jac[layer, t] = torch.linalg.matrix_norm(matrix, ord=2).item()
    return loss.item(), grad_norms, jac


@pytest.mark.gold
@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
@pytest.mark.parametrize("cell,head", [("rnn", 3), ("lstm", 3), ("gru", 0), ("lstm", 0)])
def test_uploaded_model_matches_float64_autograd(api, cell, head, fmt):
    state = torch_state_dict(cell, head=head, seed=3)
    inputs = np.random.default_rng(1).standard_normal((9, 2, 3)).astype(np.float32)
    data = as_safetensors(state) if fmt == "safetensors" else as_npz(state)
    response = upload(api, data, as_npy(inputs), name=f"m.{fmt}")
    assert response.status_code == 201, response.text
    described = response.json()
    assert (described["cell"], described["num_layers"], described["input_size"],
            described["hidden_size"], described["output_size"]) == (cell, 2, 3, 5, head or None)

    result = api.post("/api/simulate?view=explore",
                      json={"model": described["id"], "loss_at": "all", "seed": 4})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["config"]["seq_len"] == 9 and body["config"]["batch_size"] == 2

    params = with_readout(engine.load_model(_tmp(data, fmt)).params)
    K = params["head.weight"].shape[0]
    targets = engine.random_batch(9, 2, 3, K, loss_at="all", seed=4 + 1)[1]
    loss, grad_norms, jac = torch_gold(cell, params, inputs.astype(np.float64), targets)
    assert body["summary"]["loss"] == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(np.array(body["series"]["grad_norms"]), grad_norms, rtol=1e-9)
    jacobian = body["series"]["jacobian"]
    steps = np.array(jacobian["steps"])
    np.testing.assert_allclose(np.array(jacobian["norms"]), jac[:, steps], rtol=1e-8)


def _tmp(data, fmt):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False) as file:
        file.write(data)
    return file.name


def test_the_fields_the_model_fixes_override_the_query_and_count_in_the_budget(api):
    state = torch_state_dict("lstm", num_layers=1, input_size=4, hidden_size=250, head=0)
    model_id = upload(api, as_npz(state)).json()["id"]
    # hidden_size 8 in the query, but the model's 250 is what runs: seq_len 1000 is over budget
    response = api.get("/api/simulate/stream", params={
        "model": model_id, "hidden_size": 8, "seq_len": 1000, "batch_size": 2})
    assert response.status_code == 422
    assert "hidden_size^2" in response.text and "250" in response.text
    described = api.get(f"/api/models/{model_id}").json()
    assert described["fixed"] == {"cell": "lstm", "num_layers": 1, "hidden_size": 250,
                                  "input_size": 4}


def test_an_unknown_or_evicted_model_is_a_404_that_says_so(api, store):
    ids = [upload(api, as_npz(torch_state_dict("gru", seed=s, hidden_size=3))).json()["id"]
           for s in range(6)]  # the store keeps 5: the first is evicted
    response = api.post("/api/simulate", json={"model": ids[0]})
    assert response.status_code == 404
    assert "evicted" in response.json()["detail"] and "upload" in response.json()["detail"]
    assert api.get(f"/api/models/{ids[0]}").status_code == 404
    assert api.get(f"/api/models/{ids[-1]}").status_code == 200
    page = api.get(f"/models/{ids[0]}")
    assert page.status_code == 404 and "Upload the same file again" in page.text
    assert api.post("/api/simulate", json={"model": "not-hex"}).status_code == 422


def test_same_file_twice_is_one_entry(api, store):
    data = as_safetensors(torch_state_dict("rnn"))
    first, second = upload(api, data), upload(api, data)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(list(store.directory.glob("*.json"))) == 1
    assert not list(store.directory.glob(".upload-*"))  # no temporary file left behind


def test_report_json_and_page(api):
    state = torch_state_dict("lstm", head=0)
    state["bias_ih_l0"][5:10] = 4.0  # forget gate of layer 0 wide open
    model_id = upload(api, as_safetensors(state)).json()["id"]
    report = api.get(f"/api/models/{model_id}/report").json()
    carry = report["carry_bias"][0]
    assert carry["gate"] == "f" and carry["gate_at_rest"] > 0.97
    assert {(s["layer"], s["gate"]) for s in report["spectra"]} == {
        (layer, gate) for layer in (0, 1) for gate in "ifgo"}
    assert all(item["meaning"] for key in ("spectra", "saturation", "horizon", "carry_bias")
               for item in report[key])
    assert 0 < report["horizon"][0]["factor"] < 1 and report["horizon"][0]["horizon"] > 1
    assert "seeded read-out" in report["head"]
    page = api.get(f"/models/{model_id}")
    assert page.status_code == 200 and "Health report" in page.text
    assert f"/explore?model={model_id}" in page.text
    offline = api.get(f"/models/{model_id}/offline")
    assert offline.status_code == 200 and "attachment" in offline.headers["content-disposition"]
    assert "Plotly.newPlot" in offline.text and "/vendor/" not in offline.text


def test_nav_and_home_link_the_upload_page(api):
    assert 'href="/models"' in api.get("/").text
    assert api.get("/models").status_code == 200


# ---- bad input: a message, nothing stored, nothing crashes --------------------------------------

def _pickle_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, weight_hh_l0=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


def _lying_safetensors(extra_header: dict | None = None, claimed: int | None = None) -> bytes:
    header = {"weight_hh_l0": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 6400]}}
    header |= extra_header or {}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", claimed if claimed is not None else len(raw)) + raw + b"\0" * 64


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("weight_hh_l0.npy", b"\0" * 50_000_000)  # 50 MB of zeros, ~50 KB packed
    return buffer.getvalue()


def _two_cells() -> bytes:
    lstm = {f"lstm.{k}": v for k, v in torch_state_dict("lstm", num_layers=1).items()
            if not k.startswith("head")}
    gru = {f"gru.{k}": v for k, v in torch_state_dict("gru", num_layers=1).items()
           if not k.startswith("head")}
    return as_safetensors(lstm | gru)


def _mixed_layers() -> bytes:
    state = torch_state_dict("lstm", head=0)
    gru = torch_state_dict("gru", head=0)
    for key in ("weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"):
        state[key] = gru[key]
    return as_npz(state)


def _disagreeing_shapes() -> bytes:
    state = torch_state_dict("gru", head=0)
    state["weight_ih_l1"] = np.zeros((15, 4), dtype=np.float32)  # layer 1 must read H = 5
    return as_npz(state)


def _with(key, value=None, drop=None, cell="lstm") -> bytes:
    state = torch_state_dict(cell, head=0)
    if value is not None:
        state[key] = value
    if drop:
        del state[drop]
    return as_safetensors(state)


def _missing_layer() -> bytes:
    state = torch_state_dict("rnn", num_layers=3, head=0)
    for key in ("weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"):
        del state[key]
    return as_npz(state)


BAD_FILES = {
    "empty file": (b"", 422, "empty"),
    "neither format": (b"hello, this is not a model at all", 422, "neither"),
    "a pickle inside an npz": (_pickle_npz(), 422, "pickle"),
    "a real pickle": (b"\x80\x04\x95" + b"\0" * 40, 422, "neither"),
    "safetensors header that lies about offsets": (_lying_safetensors(), 422, "data_offsets"),
    "safetensors header that is huge": (_lying_safetensors(claimed=2**40), 422, "header claims"),
    "a zip bomb inside an npz": (_zip_bomb(), 422, "decompresses"),
    "keys for two cell types": (_two_cells(), 422, "more than one recurrent module"),
    "layers of two cell types": (_mixed_layers(), 422, "mixed cell types"),
    "shapes that disagree between layers": (_disagreeing_shapes(), 422, "weight_ih_l1"),
    "a missing layer": (_missing_layer(), 422, "weight_hh_l1 is missing"),
    "bidirectional": (_with("weight_hh_l0_reverse", np.zeros((20, 5), np.float32)), 422,
                      "weight_hh_l0_reverse: bidirectional"),
    "proj_size": (_with("weight_hr_l0", np.zeros((3, 5), np.float32)), 422, "proj_size"),
    "bias=False": (_with("x", drop="bias_hh_l1"), 422, "bias_hh_l1 is missing: bias=False"),
    "integer weights": (_with("weight_hh_l0", np.zeros((20, 5), np.int32)), 422,
                        "dtype I32 is not supported"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_refused_with_a_message_and_nothing_is_stored(api, store, name):
    data, status, words = BAD_FILES[name]
    response = upload(api, data)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stored_files(store) == []


def test_a_file_over_the_size_limit_is_a_413(api, store):
    response = upload(api, b"\0" * 2_000_001)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert stored_files(store) == []


def test_inputs_whose_features_do_not_match_are_refused(api, store):
    response = upload(api, as_npz(torch_state_dict("gru")),
                      as_npy(np.zeros((10, 7), np.float32)))
    assert response.status_code == 422
    assert "D = 7" in response.json()["detail"] and "input_size = 3" in response.json()["detail"]
    assert stored_files(store) == []


def test_nan_weights_are_reported_not_a_crash(api):
    state = torch_state_dict("lstm", head=0)
    state["weight_hh_l1"][0, 0] = np.nan
    response = upload(api, as_safetensors(state))
    assert response.status_code == 201
    assert any("weight_hh_l1 has 1 non-finite" in w for w in response.json()["warnings"])
    model_id = response.json()["id"]
    report = api.get(f"/api/models/{model_id}/report")
    assert report.status_code == 200
    assert report.json()["checks"][0]["status"] == "fail"
    page = api.get(f"/models/{model_id}")
    assert page.status_code == 200
    # layer 1 turns NaN after its first step: its saturation says so, not just "0%"
    layer_one = [row for row in report.json()["saturation"] if row["layer"] == 1]
    assert layer_one and all(row["nonfinite"] > 0.5 for row in layer_one)
    assert all("infinite or not a number" in row["meaning"] for row in layer_one)
    assert not any("still learns" in row["meaning"] for row in layer_one)
    assert "not a number%" not in page.text
    run = api.post("/api/simulate", json={"model": model_id})
    assert run.status_code == 200 and run.json()["nonfinite"]


# ---- the notebook path and the training lab's download -----------------------------------------

def test_notebook_one_call_loads_and_one_builds_the_figures(tmp_path):
    from gradient_flow_lab.app.views.models import report_figures

    path = tmp_path / "m.safetensors"
    path.write_bytes(as_safetensors(torch_state_dict("gru")))
    params = engine.load_state_dict(path)
    assert params["weight_hh_l0"].dtype == np.float64 and "head.weight" in params
    figures = report_figures(path)
    assert {"horizon", "spectra", "saturation"} <= set(figures)
    figures["horizon"].to_dict()  # a valid plotly.py figure


def test_training_lab_model_downloads_and_loads_into_torch(api):
    with api.stream("GET", "/api/train/stream", params={
            "cells": "lstm", "steps": 2, "hidden_size": 4, "batch_size": 2}) as response:
        text = "".join(response.iter_text())
    done = json.loads(text.split("event: done")[1].split("data: ")[1].split("\n")[0])
    download = api.get(done["downloads"]["lstm"])
    assert download.status_code == 200
    state = safetensors_numpy.load(download.content)
    lstm = nn.LSTM(state["weight_ih_l0"].shape[1], 4)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()
                          if not k.startswith("head.")})
    assert api.get("/api/train/model/" + "0" * 32).status_code == 404


@pytest.mark.parametrize("scale", [0.5, 1.7])
def test_report_gives_the_largest_lyapunov_exponent_per_layer(api, scale):
    """Zero input and zero biases keep h at 0, where the Jacobian is W_hh = s * I: every
    exponent is ln s (closed form), which the health report must show with its prediction."""
    hidden = 6
    state = {"weight_ih_l0": np.zeros((hidden, 2)), "weight_hh_l0": scale * np.eye(hidden),
             "bias_ih_l0": np.zeros(hidden), "bias_hh_l0": np.zeros(hidden)}
    response = upload(api, as_npz(state), as_npy(np.zeros((40, 2))), name="model.npz")
    assert response.status_code == 201, response.text
    report = api.get(f"/api/models/{response.json()['id']}/report").json()
    (row,) = report["lyapunov"]
    assert row["lyapunov_largest"] == pytest.approx(np.log(scale), abs=1e-9)
    assert row["lyapunov_factor_per_step"] == pytest.approx(scale, rel=1e-9)
    assert ("vanishes" if scale < 1 else "explodes") in row["lyapunov_prediction"]
    page = api.get(f"/models/{response.json()['id']}")
    assert "lyapunov-table" in page.text and "λ₁" in page.text
