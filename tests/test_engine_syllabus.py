"""Facts the syllabus teaches, computed by the engine: vanishing and exploding gradients, the
LSTM's constant error carousel, and overflow reported as a result rather than a crash."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab import engine

D, H, K = 3, 6, 3


def _last_step_only(seq_len, batch, seed=0):
    """Random inputs (T, B, D) and targets with a loss at the last step only."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(seq_len, batch, D))
    targets = np.full((seq_len, batch), -1)
    targets[-1] = rng.integers(0, K, size=batch)
    return inputs, targets


def _norm_per_step(grad):
    """(T, B, H) -> (T,) Frobenius norm of each step's gradient."""
    return np.linalg.norm(grad.reshape(grad.shape[0], -1), axis=1)


@pytest.mark.parametrize("random_h0", [False, True])
@pytest.mark.parametrize("a", [0.5, 0.9])
def test_identity_rnn_gradient_decays_at_least_as_fast_as_a_to_the_k(a, random_h0):
    """W_hh = a I, zero inputs: going back one step multiplies d loss/d h by a * tanh' <= a.
    From h0 = 0 the state stays 0, tanh' = 1 and the decay is exactly a^k."""
    seq_len, batch = 30, 2
    params = engine.init_params("rnn", D, H, K, init="identity", scale=a, seed=0)
    _, targets = _last_step_only(seq_len, batch)
    h0 = np.random.default_rng(1).normal(size=(1, batch, H)) if random_h0 else None
    trace = engine.run("rnn", params, np.zeros((seq_len, batch, D)), targets, h0=h0)
    norms = _norm_per_step(trace.grad_hidden[0])  # (T,)
    steps_back = seq_len - 1 - np.arange(seq_len)
    bound = norms[-1] * a ** steps_back
    assert norms[-1] > 0
    assert np.all(norms <= bound * (1 + 1e-12)), "faster-than-bound growth going back in time"
    if random_h0:  # a non-zero state saturates tanh a little: strictly faster than a^k
        assert norms[0] < 0.99 * bound[0]
    else:
        np.testing.assert_allclose(norms, bound, rtol=1e-12)


@pytest.mark.parametrize(("nonlinearity", "scale"), [
    ("tanh", 0.9), ("relu", 0.9), ("sigmoid", 3.0), ("sigmoid", 3.9),
])
def test_gradient_norm_obeys_the_gamma_sigma_bound(nonlinearity, scale):
    """Pascanu, Mikolov & Bengio (2013): ||d h_T / d h_t|| <= (gamma * sigma_max(W_hh))^(T - t),
    with gamma = sup |phi'| (1 for tanh and relu, 1/4 for sigmoid). So a sigmoid rnn vanishes even
    with sigma_max = 3.9 > 1."""
    seq_len, batch = 40, 3
    params = engine.init_params("rnn", D, H, K, init="orthogonal", scale=scale, seed=2)
    inputs, targets = _last_step_only(seq_len, batch, seed=2)
    trace = engine.run("rnn", params, inputs, targets, nonlinearity=nonlinearity)
    rate = engine.DERIVATIVE_BOUND[nonlinearity] * scale
    assert rate < 1
    norms = _norm_per_step(trace.grad_hidden[0])
    bound = norms[-1] * rate ** (seq_len - 1 - np.arange(seq_len))
    assert norms[-1] > 0
    assert np.all(norms <= bound * (1 + 1e-12))
    assert norms[0] < 1e-2 * norms[-1]  # it has really vanished over 40 steps


def test_saturated_tanh_vanishes_even_with_huge_weights():
    """gamma * sigma_max > 1 is necessary for an explosion, not sufficient: with sigma_max = 10 the
    tanh units saturate, tanh' ~ 0, and the gradient from the last step dies out going back."""
    seq_len = 200
    params = engine.init_params("rnn", D, H, K, init="orthogonal", scale=10.0, seed=0)
    inputs, targets = _last_step_only(seq_len, batch=2)
    trace = engine.run("rnn", params, inputs, targets)
    norms = _norm_per_step(trace.grad_hidden[0])
    assert trace.overflow_step is None and trace.grad_overflow_step is None
    assert np.max(np.abs(trace.hidden)) > 0.999  # saturated
    assert norms[0] < 1e-12 * norms[-1]


def test_lstm_with_the_forget_gate_at_one_carries_the_cell_gradient_unchanged():
    """The constant error carousel: dc_{t-1} = dc_t * f. With f = 1 (forget bias +40) and the
    input gate shut (bias -40, so nothing enters the cell and h stays ~0), the gradient reaching
    the cell at the last step arrives at every earlier step undiminished."""
    seq_len, batch = 60, 2
    params = engine.init_params("lstm", D, H, K, forget_bias=40.0, seed=0)
    params["bias_ih_l0"][:H] = -40.0  # input gate i ~ 4e-18
    params["bias_hh_l0"][:H] = 0.0
    inputs, targets = _last_step_only(seq_len, batch)
    trace = engine.run("lstm", params, inputs, targets)
    assert np.all(trace.gates["f"] == 1.0), "f should be exactly 1 in float64"
    assert np.max(trace.gates["i"]) < 1e-15
    last = trace.grad_cell[0, -1]  # (B, H)
    assert np.min(np.abs(last)) > 1e-6
    np.testing.assert_allclose(trace.grad_cell[0], np.broadcast_to(last, trace.grad_cell[0].shape),
                               rtol=1e-12, atol=0)

    # the same network with an ordinary forget gate (f ~ 1/2) forgets its gradient
    params["bias_ih_l0"][H:2 * H] = 0.0
    leaky = engine.run("lstm", params, inputs, targets)
    assert np.max(leaky.gates["f"]) < 0.9
    leaky_norms = _norm_per_step(leaky.grad_cell[0])
    assert leaky_norms[0] < 1e-6 * leaky_norms[-1]


def test_relu_rnn_with_huge_weights_reports_the_overflow_step():
    """sigma_max = 10 and relu (gamma = 1): the state grows ~10x a step until it overflows. The
    run finishes without an exception or a NumPy warning (warnings are errors in this suite)
    and says where it broke."""
    seq_len, batch = 500, 2
    params = engine.init_params("rnn", D, 8, K, init="orthogonal", scale=10.0, seed=0)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(seq_len, batch, D))
    targets = rng.integers(0, K, size=(seq_len, batch))
    trace = engine.run("rnn", params, inputs, targets, nonlinearity="relu")

    step = trace.overflow_step
    assert isinstance(step, int) and 0 < step < seq_len
    assert np.all(np.isfinite(trace.hidden[:, :step])), "values before the overflow are finite"
    assert not np.all(np.isfinite(trace.hidden[:, step])), "overflow_step is where it broke"
    assert np.all(np.isfinite(trace.step_loss[:step]))
    # it really exploded on the way: the last finite state is astronomically large
    assert np.max(np.abs(trace.hidden[:, step - 1])) > 1e300
    assert not np.isfinite(trace.loss)
    assert isinstance(trace.grad_overflow_step, int)
    assert not np.all(np.isfinite(trace.grad_hidden[:, trace.grad_overflow_step]))
    assert np.all(np.isfinite(trace.grad_hidden[:, trace.grad_overflow_step + 1:]))


@pytest.mark.parametrize(("cell", "nonlinearity"), [
    ("rnn", "tanh"), ("rnn", "sigmoid"), ("lstm", "tanh"), ("gru", "tanh"),
])
def test_bounded_cells_with_huge_weights_finish_finite(cell, nonlinearity):
    """tanh, sigmoid and the gated cells squash their state, so sigma_max = 10 over 500 steps
    overflows nothing: every value and gradient is finite and no overflow is reported."""
    seq_len, batch = 500, 2
    params = engine.init_params(cell, D, 8, K, init="orthogonal", scale=10.0, seed=0)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(seq_len, batch, D))
    targets = rng.integers(0, K, size=(seq_len, batch))
    trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity)
    assert trace.overflow_step is None and trace.grad_overflow_step is None
    assert np.isfinite(trace.loss)
    assert np.all(np.isfinite(trace.hidden)) and np.all(np.isfinite(trace.grad_hidden))
    assert all(np.all(np.isfinite(grad)) for grad in trace.grads.values())
