"""Tasks, optimisers and the training loop of the training lab (engine side)."""

import numpy as np
import pytest

from gradient_flow_lab import engine
from gradient_flow_lab.engine import optim
from gradient_flow_lab.engine.tasks import (
    adding,
    delayed_recall,
    make_batch,
    task_shape,
    temporal_order,
)
from gradient_flow_lab.engine.train import TrainConfig, train


def test_delayed_recall_asks_for_the_first_symbol_at_the_end():
    batch = delayed_recall(np.random.default_rng(0), batch_size=6, lag=7)
    assert batch.inputs.shape == (8, 6, 10) and batch.targets.shape == (8, 6)
    assert np.all(batch.targets[:-1] == -1)
    np.testing.assert_array_equal(batch.targets[-1], batch.inputs[0, :, :8].argmax(axis=1))
    assert np.all(batch.inputs[1:-1, :, 8] == 1) and np.all(batch.inputs[-1, :, 9] == 1)
    assert np.all(batch.inputs[1:, :, :8] == 0), "the symbol must appear only at t = 0"


def test_temporal_order_class_is_the_order_of_the_two_marked_symbols():
    batch = temporal_order(np.random.default_rng(1), batch_size=50, lag=40)
    assert batch.inputs.shape == (40, 50, 8)
    assert np.all(batch.inputs.sum(axis=2) == 1), "exactly one symbol per step"
    for b in range(50):
        marked = np.flatnonzero(batch.inputs[:, b, 4:6].any(axis=1))
        assert len(marked) == 2 and 4 <= marked[0] <= 8 and 20 <= marked[1] <= 24
        kinds = batch.inputs[marked, b, 4:6].argmax(axis=1)  # 0 = X, 1 = Y
        assert batch.targets[-1, b] == 2 * kinds[0] + kinds[1]
    assert set(np.unique(batch.targets[-1])) == {0, 1, 2, 3}


def test_adding_target_is_the_sum_of_the_two_marked_values():
    batch = adding(np.random.default_rng(2), batch_size=20, lag=30)
    assert batch.loss == "mse" and batch.targets.shape == (30, 20, 1)
    assert np.all(np.isnan(batch.targets[:-1]))
    markers = batch.inputs[:, :, 1]
    assert np.all(markers.sum(axis=0) == 2)
    assert np.all(markers[:15].sum(axis=0) == 1), "one marker in each half"
    expected = (batch.inputs[:, :, 0] * markers).sum(axis=0)
    np.testing.assert_allclose(batch.targets[-1, :, 0], expected)


def test_same_seed_same_batches():
    a = make_batch("temporal_order", np.random.default_rng(5), 4, 20)
    b = make_batch("temporal_order", np.random.default_rng(5), 4, 20)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    with pytest.raises(ValueError, match="task"):
        task_shape("copying")


def test_mse_gradient_matches_finite_differences():
    params = engine.init_params("lstm", 2, 3, 1, 2, seed=0)
    batch = adding(np.random.default_rng(3), batch_size=2, lag=6)
    trace = engine.run("lstm", params, batch.inputs, batch.targets, loss="mse")
    eps = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            losses = []
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[key][index] += sign * eps
                losses.append(engine.run("lstm", shifted, batch.inputs, batch.targets,
                                         loss="mse").loss)
            numeric[index] = (losses[0] - losses[1]) / (2 * eps)
        error = np.abs(numeric - trace.grads[key]).max() / max(
            np.abs(numeric).max() + np.abs(trace.grads[key]).max(), 1e-12)
        assert error < 1e-6, f"{key}: relative error {error:.2e}"


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_each_optimiser_minimises_a_quadratic(name):
    target = np.array([3.0, -2.0])
    params = {"w": np.zeros(2)}
    state = optim.init_state(name, params)
    lr = {"sgd": 0.1, "momentum": 0.02, "adam": 0.1}[name]
    for _ in range(500):
        grads = {"w": 2 * (params["w"] - target)}
        params, state = optim.step(name, params, grads, state, lr)
    np.testing.assert_allclose(params["w"], target, atol=1e-3)


def test_adams_first_step_is_lr_times_the_sign_of_the_gradient():
    params = {"w": np.array([1.0, 1.0, 1.0])}
    grads = {"w": np.array([0.5, -2.0, 1e-3])}
    new, state = optim.step("adam", params, grads, optim.init_state("adam", params), 0.01)
    # m_hat = g and v_hat = g^2 after bias correction, so the step is lr * g / (|g| + eps)
    expected = 1.0 - 0.01 * grads["w"] / (np.abs(grads["w"]) + 1e-8)
    np.testing.assert_allclose(new["w"], expected, rtol=1e-12)
    assert state["step"] == 1


def test_optimisers_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2))
    for name, make in (("momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
                       ("adam", lambda p: torch.optim.Adam(p, lr=0.01))):
        weight = torch.nn.Parameter(torch.tensor(start))
        opt = make([weight])
        params, state = {"w": start.copy()}, optim.init_state(name, {"w": start})
        for _ in range(5):
            grad = rng.normal(size=(3, 2))
            weight.grad = torch.tensor(grad)
            opt.step()
            params, state = optim.step(name, params, {"w": grad}, state,
                                       0.1 if name == "momentum" else 0.01)
        np.testing.assert_allclose(params["w"], weight.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_short_run_learns_delayed_recall_at_a_small_lag(cell):
    config = TrainConfig(cell=cell, lag=5, steps=150, hidden_size=16, batch_size=16, lr=3e-2)
    records = list(train(config))
    assert records[0].accuracy < 0.5
    assert np.mean([r.accuracy for r in records[-10:]]) > 0.95


def test_records_carry_per_step_gradient_norms_and_clipping():
    config = TrainConfig(lag=30, steps=3, hidden_size=8, batch_size=4, clip=0.01, max_points=10)
    records = list(train(config))
    assert [r.step for r in records] == [1, 2, 3]
    for record in records:
        assert len(record.time_steps) == len(record.grad_norms) == 10
        assert record.time_steps[-1] == 30
        assert record.grad_norm_clipped == pytest.approx(min(record.grad_norm, 0.01), rel=1e-3)


def test_truncation_below_the_lag_leaves_no_gradient_at_the_symbol():
    config = TrainConfig(lag=20, steps=2, hidden_size=8, batch_size=4, truncation=5)
    record = list(train(config))[-1]
    early = record.grad_norms[record.time_steps < 20]
    assert np.all(early == 0), "the loss cannot reach the symbol across chunk boundaries"


def test_divergence_stops_that_run_with_a_flag():
    config = TrainConfig(cell="rnn", nonlinearity="relu", optimizer="sgd", lr=1e6, clip=0,
                         lag=10, steps=50, hidden_size=8, batch_size=4)
    records = list(train(config))
    assert records[-1].diverged and len(records) < 50
