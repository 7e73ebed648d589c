"""The measures the pages show, now computed by the engine: carry gains in log space, retention,
the truncation band, gradient distances, the activation facts and the task facts."""

import numpy as np
import pytest

from gradient_flow_lab import engine
from tests.test_engine_diagnostics import make_trace


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_log_carry_gain_is_the_log_of_the_carry_gate_product(cell):
    trace = make_trace(cell)
    gate = trace.gates[engine.CARRY_GATE[cell]]  # (L, T, B, H)
    log_gain = engine.log_carry_gain(trace)
    for t in (0, 5, trace.seq_len - 1):
        np.testing.assert_allclose(log_gain[:, t], np.log(gate[:, t + 1:]).sum(axis=1),
                                   rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(engine.carry_gain(trace), np.exp(log_gain), rtol=1e-15)


def test_log_carry_gain_keeps_what_the_product_loses():
    # forget bias -10 over 200 steps: prod f ~ 1e-870, far below float64's smallest number
    params = engine.init_params("lstm", 3, 4, 2, init="orthogonal", scale=0.0, forget_bias=-10.0)
    inputs, targets = engine.random_batch(200, 1, 3, 2, input_scale=0.0)
    trace = engine.run("lstm", params, inputs, targets)
    assert engine.carry_gain(trace)[0, 0].max() == 0.0
    log_gain = engine.log_carry_gain(trace)[0, 0]
    np.testing.assert_allclose(log_gain, 199 * np.log(engine.sigmoid(-10.0)), rtol=1e-9)
    assert engine.log_mean_exp(log_gain) == pytest.approx(199 * np.log(engine.sigmoid(-10.0)))
    assert engine.log_carry_gain(make_trace("rnn")) is None


def test_log_mean_exp():
    values = np.array([0.1, 0.5, 2.0])
    assert engine.log_mean_exp(np.log(values)) == pytest.approx(np.log(values.mean()), rel=1e-14)
    assert engine.log_mean_exp([-2000.0, -2000.0 + np.log(3.0)]) == pytest.approx(
        -2000.0 + np.log(2.0), rel=1e-14)
    assert engine.log_mean_exp([-np.inf, -np.inf]) == -np.inf
    with pytest.raises(ValueError, match="empty"):
        engine.log_mean_exp([])


def test_retention_is_first_over_last_and_nan_without_a_ratio():
    assert engine.retention([1e-6, 0.5, 2.0]) == pytest.approx(5e-7)
    assert np.isnan(engine.retention([1.0, 0.0]))
    assert np.isnan(engine.retention([np.inf, 1.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        engine.retention(np.ones((2, 2)))


def test_reach_band_is_the_lower_triangle_cut_at_chunk_starts():
    full = engine.reach_band([0, 3, 5], 6)
    np.testing.assert_array_equal(full, np.tril(np.ones((6, 6), bool))[[0, 3, 5]])
    cut = engine.reach_band([1, 2, 5], 6, truncation=3)
    np.testing.assert_array_equal(cut, [[1, 1, 0, 0, 0, 0],
                                        [1, 1, 1, 0, 0, 0],
                                        [0, 0, 0, 1, 1, 1]])


@pytest.mark.parametrize("k", [2, 5])
def test_reach_band_holds_every_gradient_a_truncated_run_computes(k):
    trace = make_trace("gru", seq_len=12, truncation=k)
    reach = engine.loss_reach(trace)
    outside = ~engine.reach_band(reach.loss_steps, 12, k)[:, None, :]  # (N, 1, T)
    assert np.all(np.where(outside, reach.norms, 0.0) == 0.0)
    assert np.any(np.where(~outside, reach.norms, 0.0) > 0.0)


@pytest.mark.parametrize(("args", "message"), [
    (([0, 6], 6), "loss_steps"),
    (([0], 0), "seq_len"),
    (([0], 4, 0), "truncation"),
])
def test_reach_band_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        engine.reach_band(*args)


def test_relative_difference_and_cosine_survive_huge_gradients():
    exact = {"a": np.array([3e200, 0.0]), "b": np.array([4e200])}
    approx = {"a": np.array([3e200, 0.0]), "b": np.array([0.0])}
    assert engine.relative_difference(approx, exact) == pytest.approx(0.8, rel=1e-14)
    assert engine.relative_difference(exact, exact) == 0.0
    assert engine.cosine(approx, exact) == pytest.approx(0.6, rel=1e-14)
    zero = {"a": np.zeros(2), "b": np.zeros(1)}
    assert np.isnan(engine.relative_difference(approx, zero))
    with pytest.raises(ValueError, match="same keys"):
        engine.relative_difference({"a": np.zeros(2)}, exact)
    with pytest.raises(ValueError, match="same keys"):
        engine.cosine({"a": np.zeros(2)}, exact)


def test_activation_facts():
    assert engine.sigmoid_fixed_point() == pytest.approx(0.6590460684, abs=1e-10)
    x = engine.sigmoid_fixed_point()
    assert float(engine.sigmoid(x)) == pytest.approx(x, abs=1e-15)
    grid = np.arange(-120, 121) / 20.0
    assert engine.grad_maxima(grid) == {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}
    assert engine.grad_maxima([0.5], ["tanh"])["tanh"] < 1.0  # read off the points, not assumed
    with pytest.raises(ValueError, match="nonlinearity"):
        engine.grad_maxima(grid, ["softsign"])
    with pytest.raises(ValueError, match="depth"):
        engine.compose("tanh", grid, -1)


@pytest.mark.parametrize("task", engine.TASKS)
@pytest.mark.parametrize("lag", [1, 9, 40])
def test_sequence_length_is_what_the_generator_makes(task, lag):
    batch = engine.tasks.make_batch(task, np.random.default_rng(0), 2, lag)
    assert batch.inputs.shape[0] == engine.sequence_length(task, lag)
    assert batch.chance == engine.chance_level(task)


def test_task_facts():
    assert engine.chance_level("delayed_recall") == 1 / 8
    assert engine.chance_level("temporal_order") == 1 / 4
    assert engine.chance_level("adding") == pytest.approx(1 / 6)
    assert engine.sequence_length("delayed_recall", 40) == 41
    with pytest.raises(ValueError, match="task"):
        engine.chance_level("copy")
    with pytest.raises(ValueError, match="lag"):
        engine.sequence_length("delayed_recall", 0)
    with pytest.raises(ValueError, match="batch_size"):
        engine.tasks.make_batch("adding", np.random.default_rng(0), 0, 5)


def test_diagnostics_reject_out_of_range_arguments():
    trace = make_trace("rnn", layers=2, batch=2)
    with pytest.raises(ValueError, match="layer"):
        engine.weight_grad_contributions(trace, 2)
    with pytest.raises(ValueError, match="steps"):
        engine.weight_grad_contributions(trace, 0, steps=[trace.seq_len])
    with pytest.raises(ValueError, match="batch_index"):
        engine.jacobian_norms(trace, batch_index=2)
    with pytest.raises(ValueError, match="max_loss_steps"):
        engine.loss_reach(trace, max_loss_steps=0)
    with pytest.raises(ValueError, match="seq_len"):
        engine.random_batch(0, 1, 1, 1)
