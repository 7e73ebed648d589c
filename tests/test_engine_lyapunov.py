"""Lyapunov exponents and Jacobian spectra along a recorded run (engine/lyapunov.py).

Closed forms where the answer is known exactly, finite differences for the step Jacobians, the
link to ``engine.jacobian_norms``, and two measured claims the edge-of-chaos page makes: the sign
of the largest exponent tells whether d loss / d h_t shrinks or grows going back in time, and an
lstm with a large forget bias and no recurrent weights sits just below 0 (the cell carousel).
Letters in shapes: T steps, B batch, D inputs, H hidden units, L layers, S state size, k exponents.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab import engine
from gradient_flow_lab.engine import lyapunov
from gradient_flow_lab.engine.cells import CELL_MODULES
from tests.engine_helpers import CELL_CASE_IDS, CELL_CASES


def zero_input_rnn(weight_hh: np.ndarray, *, seq_len: int = 40, nonlinearity: str = "tanh"):
    """A one-layer rnn with the given W_hh (H x H), zero biases, zero inputs and h0 = 0: its
    state stays at 0, where tanh' = 1, so every step Jacobian is W_hh itself."""
    H = weight_hh.shape[0]
    params = engine.init_params("rnn", 2, H, 2, seed=0)
    params["bias_ih_l0"][:] = 0.0
    params["bias_hh_l0"][:] = 0.0
    params["weight_hh_l0"] = np.array(weight_hh, dtype=np.float64)
    inputs = np.zeros((seq_len, 1, 2))
    targets = np.zeros((seq_len, 1), dtype=np.int64)
    return params, engine.run("rnn", params, inputs, targets, nonlinearity=nonlinearity)


def random_orthogonal(size: int, seed: int = 0) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(size, size)))
    return q * np.sign(np.diag(r))


# ------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
def test_scaled_orthogonal_weights_give_every_exponent_ln_scale(scale):
    params, trace = zero_input_rnn(scale * random_orthogonal(6))
    assert np.all(trace.hidden == 0.0)
    result = lyapunov.lyapunov_spectrum("rnn", params, trace)
    assert result.exponents.shape == (1, 6)  # (L, k) when layer is None
    np.testing.assert_allclose(result.exponents, np.log(scale), rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.running_largest[0], np.log(scale), rtol=0, atol=1e-10)
    top_two = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0, k=2, warmup=3)
    assert top_two.exponents.shape == (2,)
    np.testing.assert_allclose(top_two.exponents, np.log(scale), rtol=0, atol=1e-10)


def test_diagonal_weights_give_the_sorted_log_magnitudes():
    d = np.array([0.3, -1.2, 0.9, 2.0, -0.05, 1.0])
    params, trace = zero_input_rnn(np.diag(d))
    exponents = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0).exponents
    np.testing.assert_allclose(exponents, np.sort(np.log(np.abs(d)))[::-1], rtol=0, atol=1e-10)


def test_a_partial_frame_finds_the_fastest_directions_of_a_diagonal_map():
    # Coordinate axes would stay in their own invariant subspace; the random frame must not.
    d = np.array([0.3, 0.5, 0.9, 2.0, 0.05, 1.5])
    params, trace = zero_input_rnn(np.diag(d), seq_len=400)
    exponents = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0, k=2,
                                           warmup=100).exponents
    np.testing.assert_allclose(exponents, np.log([2.0, 1.5]), rtol=0, atol=1e-3)


def test_zero_row_of_weights_gives_minus_infinity_without_warnings():
    # filterwarnings = error: a log(0) warning would fail this test.
    weight = random_orthogonal(5)
    weight[2] = 0.0  # unit 2 forgets everything at every step
    params, trace = zero_input_rnn(weight)
    exponents = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0).exponents
    assert exponents[-1] == -np.inf
    assert np.all(np.isfinite(exponents[:-1]))  # the rank of every product stays 4
    assert np.all(exponents[:-1] <= 1e-12)  # a projection after a rotation cannot stretch


def test_relu_unit_stuck_at_zero_gives_one_minus_infinity():
    H, T = 5, 60
    params = engine.init_params("rnn", 3, H, 2, scale=0.5, seed=1)
    params["bias_hh_l0"][:] = 3.0  # every other unit stays on
    params["bias_hh_l0"][3] = -100.0  # unit 3 never switches on
    inputs, targets = engine.random_batch(T, 1, 3, 2, seed=1)
    trace = engine.run("rnn", params, inputs, targets, nonlinearity="relu")
    assert np.all(trace.hidden[0, :, 0, 3] == 0.0)
    assert np.all(np.delete(trace.hidden[0, :, 0], 3, axis=1) > 0)
    exponents = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0).exponents
    assert np.isneginf(exponents).sum() == 1 and exponents[-1] == -np.inf
    assert np.all(np.isfinite(exponents[:-1]))
    # Zero weights: everything collapses, still a result.
    params["weight_hh_l0"][:] = 0.0
    trace = engine.run("rnn", params, inputs, targets, nonlinearity="relu")
    assert np.all(lyapunov.lyapunov_spectrum("rnn", params, trace).exponents == -np.inf)
    values = lyapunov.jacobian_product_singular_values("rnn", params, trace, [0, T - 2, T - 1])
    np.testing.assert_array_equal(values, [[0.0] * H, [0.0] * H, [1.0] * H])


# ------------------------------------------------------------------ step Jacobians, checked


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
@pytest.mark.parametrize("layer", [0, 1])
def test_step_jacobians_match_central_differences(cell, nonlinearity, layer):
    """Perturb the previous state, rerun one step with the cell's own forward, compare."""
    H, T, batch_index = 5, 7, 1
    params = engine.init_params(cell, 3, H, 2, 2, seed=1)
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(T, 2, 3))
    targets = rng.integers(0, 2, (T, 2))
    h0 = 0.5 * rng.normal(size=(2, 2, H))
    h0 = (h0, 0.5 * rng.normal(size=(2, 2, H))) if cell == "lstm" else h0
    trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity, h0=h0)
    jacobians = lyapunov.step_jacobians(cell, params, trace, layer, batch_index=batch_index)
    S = 2 * H if cell == "lstm" else H
    assert jacobians.shape == (T, S, S)

    layer_input = inputs if layer == 0 else trace.hidden[layer - 1]  # held fixed as recorded
    x_proj = (layer_input[:, batch_index:batch_index + 1] @ params[f"weight_ih_l{layer}"].T
              + params[f"bias_ih_l{layer}"])  # (T, 1, GH)

    def one_step(t, state):
        hh, cache = CELL_MODULES[cell].forward(
            x_proj[t:t + 1], params[f"weight_hh_l{layer}"], params[f"bias_hh_l{layer}"],
            state[None, :H], state[None, H:] if cell == "lstm" else None, nonlinearity)
        return np.concatenate([hh[0, 0], cache["cell"][0, 0]]) if cell == "lstm" else hh[0, 0]

    eps = 1e-6
    for t in range(T):
        state = (trace.hidden[layer, t - 1] if t else trace.initial_hidden[layer])[batch_index]
        if cell == "lstm":
            c_prev = (trace.cell[layer, t - 1] if t else trace.initial_cell[layer])[batch_index]
            state = np.concatenate([state, c_prev])
        recorded = trace.hidden[layer, t, batch_index]
        if cell == "lstm":
            recorded = np.concatenate([recorded, trace.cell[layer, t, batch_index]])
        np.testing.assert_allclose(one_step(t, state), recorded, rtol=1e-12, atol=1e-14)
        numeric = np.stack([(one_step(t, state + eps * e) - one_step(t, state - eps * e))
                            / (2 * eps) for e in np.eye(S)], axis=1)  # (S, S), column j = d/ds_j
        error = np.linalg.norm(numeric - jacobians[t]) / np.linalg.norm(jacobians[t])
        assert error < 1e-6, f"step {t}: relative error {error:.2e}"


def test_step_jacobians_of_chosen_steps_and_forward_states_agree_with_run():
    params = engine.init_params("gru", 3, 4, 2, 2, seed=5)
    inputs, targets = engine.random_batch(9, 2, 3, 2, seed=5)
    trace = engine.run("gru", params, inputs, targets)
    states = lyapunov.forward_states("gru", params, inputs)
    np.testing.assert_array_equal(states.hidden, trace.hidden)
    for name in ("r", "z", "n"):
        np.testing.assert_array_equal(states.gates[name], trace.gates[name])
    every = lyapunov.step_jacobians("gru", params, trace, 1)
    np.testing.assert_array_equal(lyapunov.step_jacobians("gru", params, states, 1, steps=[8, 2]),
                                  every[[8, 2]])


# ------------------------------------------------------------ products of Jacobians, checked


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_largest_singular_value_is_jacobian_norms(cell):
    params = engine.init_params(cell, 3, 8, 2, 2, scale=1.3, seed=3)
    inputs, targets = engine.random_batch(60, 3, 3, 2, seed=3)
    trace = engine.run(cell, params, inputs, targets)
    reference = engine.jacobian_norms(trace, batch_index=2)
    assert reference.window_start == 0
    for layer in (0, 1):
        values = lyapunov.jacobian_product_singular_values(cell, params, trace, reference.steps,
                                                           layer=layer, batch_index=2)
        assert values.shape == (len(reference.steps), 8)
        assert np.all(np.diff(values, axis=1) <= 0)  # each row sorted descending
        np.testing.assert_allclose(values[:, 0], reference.norms[layer], rtol=1e-10)


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
def test_sweeps_agree_with_explicit_products_of_the_step_jacobians(cell, nonlinearity):
    """The spectrum and the singular values apply J_t (and J_t^T) without forming it; here they
    are recomputed from ``step_jacobians`` by plain matrix products and NumPy's QR and SVD."""
    H, T = 4, 12
    params = engine.init_params(cell, 3, H, 2, 2, scale=1.5, seed=7)
    inputs, targets = engine.random_batch(T, 2, 3, 2, seed=7)
    trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity)
    jacobians = lyapunov.step_jacobians(cell, params, trace, 1, batch_index=1)  # (T, S, S)
    S = jacobians.shape[1]
    q, _ = np.linalg.qr(jacobians[1] @ jacobians[0])  # the frame the warm-up leaves behind
    sums = np.zeros(S)
    with np.errstate(divide="ignore"):
        for jac in jacobians[2:]:
            q, r = np.linalg.qr(jac @ q)
            sums += np.log(np.abs(np.diag(r)))
    reference = np.sort(sums / (T - 2))[::-1]
    result = lyapunov.lyapunov_spectrum(cell, params, trace, layer=1, warmup=2, batch_index=1)
    # A relu unit that is off at some step makes J_t singular: the engine gives exact -inf
    # there, plain QR gives rounding noise (ln 1e-16 or so per such step).
    finite = int(np.isfinite(result.exponents).sum())
    assert finite >= 1
    np.testing.assert_allclose(result.exponents[:finite], reference[:finite], rtol=1e-9,
                               atol=1e-12)
    assert np.all(reference[finite:] < -2.0)
    product, expected = np.eye(S), []
    for t in range(T - 1, -1, -1):
        expected.append(np.linalg.svd(product[:H, :H], compute_uv=False))
        product = product @ jacobians[t]
    values = lyapunov.jacobian_product_singular_values(cell, params, trace, np.arange(T),
                                                       layer=1, batch_index=1)
    expected = np.array(expected[::-1])  # (T, H)
    # An SVD is accurate to rounding relative to the largest singular value of its matrix.
    assert np.all(np.abs(values - expected) <= 1e-9 * expected + 1e-12 * expected[:, :1])


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
def test_scaled_orthogonal_products_have_every_singular_value_scale_to_the_distance(scale):
    T = 40
    params, trace = zero_input_rnn(scale * random_orthogonal(6), seq_len=T)
    steps = np.array([0, 5, 39, 20, 5])  # any order, repeats allowed
    values = lyapunov.jacobian_product_singular_values("rnn", params, trace, steps)
    expected = np.repeat(scale ** (T - 1.0 - steps)[:, None], 6, axis=1)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    logs = lyapunov.jacobian_product_singular_values("rnn", params, trace, steps, log=True)
    np.testing.assert_allclose(logs, np.log(expected), rtol=0, atol=1e-12)


def test_singular_values_beyond_float64_are_inf_and_their_logs_finite():
    T = 700  # 3**699 (about 1e333) overflows float64, its logarithm does not
    params, trace = zero_input_rnn(3.0 * random_orthogonal(4), seq_len=T)
    values = lyapunov.jacobian_product_singular_values("rnn", params, trace, [0, T - 100])
    assert np.all(values[0] == np.inf)
    np.testing.assert_allclose(values[1], 3.0 ** 99, rtol=1e-10)
    logs = lyapunov.jacobian_product_singular_values("rnn", params, trace, [0], log=True)
    np.testing.assert_allclose(logs, (T - 1) * np.log(3.0), rtol=1e-12)


# ---------------------------------------------------------------- measured claims for the page


@pytest.mark.parametrize(("weight_scale", "sign"), [(1.0, -1), (6.0, +1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_of_the_largest_exponent_gives_the_slope_of_the_gradient_norm(weight_scale, sign,
                                                                           seed):
    """A long tanh rnn, loss at the last step only: log ||d loss / d h_t|| is a straight line in
    t whose slope is minus the largest exponent. Measured (H=32, T=400, W_hh ~ N(0, 1/H) rescaled
    to spectral norm s, inputs N(0, 1), 6 seeds): s = 1 gives lambda_1 = -0.95 .. -1.19 and the
    slope matched -lambda_1 within 5%; s = 6 gives +0.18 .. +0.26, within 5%; s = 5 and 8
    within 9%. Near the edge (|lambda_1| < 0.02) the finite-time sign is not reliable."""
    H, T = 32, 400
    params = engine.init_params("rnn", 4, H, 3, init="normal", scale=weight_scale, seed=seed)
    inputs, targets = engine.random_batch(T, 1, 4, 3, input_scale=1.0, seed=seed)
    h0 = np.random.default_rng(seed).normal(size=(1, 1, H))
    trace = engine.run("rnn", params, inputs, targets, h0=h0)
    largest = lyapunov.lyapunov_spectrum("rnn", params, trace, layer=0, k=1,
                                         warmup=50).exponents[0]
    steps = np.arange(T - 300, T - 20)
    with np.errstate(divide="ignore"):
        log_norms = np.log(engine.grad_norms(trace)[0, steps])
    finite = np.isfinite(log_norms)  # s = 1 underflows to 0 about 700 steps back; not here
    assert finite.all()
    slope = np.polyfit(steps, log_norms, 1)[0]
    assert np.sign(largest) == sign
    assert np.sign(slope) == -sign
    assert abs(slope + largest) <= 0.15 * abs(largest)


def test_lstm_carousel_with_forget_bias_10_and_no_recurrent_weights():
    """W_hh = 0 makes J_t = [[0, A_t], [0, F_t]] with F_t = diag(f_t), A_t = diag(o (1-tanh^2 c)
    f): h_{t-1} has no influence (H exponents -inf), and the cell state of each unit is scaled by
    its forget gate. The product's singular values are exactly prod_{t<T-1} f_t * sqrt(a^2 + f^2)
    at the last step, so exponent i is (sum_{t<T-1} ln f_ti + ln sqrt(a_{T-1,i}^2 +
    f_{T-1,i}^2)) / T. With zero input f = sigmoid(10) at every step and c saturates tanh (a = 0),
    so every finite exponent is ln sigmoid(10) = -4.54e-5 nats per step: just below 0."""
    H, T = 8, 200
    params = engine.init_params("lstm", 4, H, 3, scale=0.0, forget_bias=10.0, seed=0)
    assert np.all(params["weight_hh_l0"] == 0.0)
    for input_scale in (0.0, 1.0):
        inputs, targets = engine.random_batch(T, 1, 4, 3, input_scale=input_scale, seed=0)
        trace = engine.run("lstm", params, inputs, targets)
        exponents = lyapunov.lyapunov_spectrum("lstm", params, trace, layer=0).exponents
        assert np.all(exponents[H:] == -np.inf)
        f, o = trace.gates["f"][0, :, 0], trace.gates["o"][0, :, 0]  # (T, H)
        a = o * (1.0 - np.tanh(trace.cell[0, :, 0]) ** 2) * f
        expected = (np.log(f[:-1]).sum(axis=0)
                    + 0.5 * np.log(a[-1] ** 2 + f[-1] ** 2)) / T
        np.testing.assert_allclose(exponents[:H], np.sort(expected)[::-1], rtol=1e-9)
        assert -1e-4 < exponents[0] < 0
        if input_scale == 0.0:
            np.testing.assert_allclose(exponents[:H], -np.log1p(np.exp(-10.0)), rtol=1e-9)


# ------------------------------------------------------------------------ the phase diagram


def test_largest_exponent_grid_is_seeded_and_crosses_zero():
    kwargs = {"hidden_size": 16, "seq_len": 200, "init": "normal", "seed": 3}
    grid = lyapunov.largest_exponent_grid("rnn", [0.5, 6.0], [0.0, 1.0], **kwargs)
    assert grid.shape == (2, 2)
    assert np.all(grid[0] < -0.3)  # ordered: strong contraction
    assert np.all(grid[1] > 0.05)  # chaotic, with or without input
    np.testing.assert_array_equal(
        grid, lyapunov.largest_exponent_grid("rnn", [0.5, 6.0], [0.0, 1.0], **kwargs))
    biases = lyapunov.largest_exponent_grid("lstm", [0.0], [1.0, 10.0], column="forget_bias",
                                            hidden_size=8, seq_len=100)
    assert biases.shape == (1, 2) and biases[0, 0] < biases[0, 1] < 0


# ------------------------------------------------------------------------------- bad inputs


def test_bad_arguments_raise_value_error():
    params, trace = zero_input_rnn(np.eye(3))
    with pytest.raises(ValueError, match="cell"):
        lyapunov.lyapunov_spectrum("lstm", params, trace)
    with pytest.raises(ValueError, match="layer"):
        lyapunov.lyapunov_spectrum("rnn", params, trace, layer=1)
    with pytest.raises(ValueError, match="k must"):
        lyapunov.lyapunov_spectrum("rnn", params, trace, k=4)
    with pytest.raises(ValueError, match="warmup"):
        lyapunov.lyapunov_spectrum("rnn", params, trace, warmup=40)
    with pytest.raises(ValueError, match="batch_index"):
        lyapunov.step_jacobians("rnn", params, trace, 0, batch_index=1)
    with pytest.raises(ValueError, match="steps"):
        lyapunov.jacobian_product_singular_values("rnn", params, trace, [40])
    with pytest.raises(ValueError, match="nonlinearity"):
        lyapunov.step_jacobians("rnn", params, trace, 0, nonlinearity="relu")
    with pytest.raises(ValueError, match="column"):
        lyapunov.largest_exponent_grid("rnn", [1.0], [1.0], column="forget_bias")


@pytest.mark.parametrize(("cell", "scale"), [("rnn", 1.2), ("lstm", 1.0), ("gru", 1.5),
                                             ("rnn", 0.0)])
def test_largest_exponent_fast_path_matches_a_qr_sweep(cell, scale):
    """k = 1 takes a norm per step instead of a QR: the same exponent as a LAPACK QR sweep of
    the same frame gives, a direction mapped to 0 included (ln 0 = -inf)."""
    params = engine.init_params(cell, 3, 16, 4, num_layers=2, scale=scale, seed=2)
    inputs = np.random.default_rng(0).standard_normal((60, 1, 3))
    trace = engine.run(cell, params, inputs, np.zeros((60, 1), dtype=int))
    fast = lyapunov.lyapunov_spectrum(cell, params, trace, layer=0, k=1, seed=3)
    factors, _ = lyapunov._layer_factors(cell, params, trace, 0, 0, None)
    size = lyapunov.state_size(cell, 16)
    q = np.linalg.qr(np.random.default_rng(3).standard_normal((size, 1)))[0]
    total = 0.0
    for t in range(60):
        q, r = np.linalg.qr(lyapunov._apply(cell, factors, t, q))
        if r[0, 0] == 0:
            total, q = -np.inf, np.eye(size)[:, :1]
        else:
            total += np.log(abs(r[0, 0]))
    if np.isinf(total):
        assert fast.exponents[0] == -np.inf
    else:
        assert fast.exponents[0] == pytest.approx(total / 60, rel=1e-12, abs=1e-12)
