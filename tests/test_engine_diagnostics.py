"""Diagnostics, clipping and theory, each checked against an independent computation."""

import numpy as np
import pytest

from gradient_flow_lab import engine
from gradient_flow_lab.engine.cells import CELL_MODULES


def make_trace(cell, *, layers=2, seq_len=12, batch=2, hidden=5, loss_at="all", truncation=None,
               nonlinearity="tanh", init="default", scale=None, seed=0):
    params = engine.init_params(cell, 3, hidden, 4, layers, init=init, scale=scale,
                                forget_bias=1.0, seed=seed)
    inputs, targets = engine.random_batch(seq_len, batch, 3, 4, loss_at=loss_at, seed=seed + 1)
    return engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity,
                      truncation=truncation)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_contributions_sum_to_the_bptt_gradient(cell):
    trace = make_trace(cell)
    for layer in range(trace.num_layers):
        parts = engine.weight_grad_contributions(trace, layer)
        np.testing.assert_allclose(parts.sum(axis=0), trace.grads[f"weight_hh_l{layer}"],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(engine.contribution_norms(trace)[layer],
                                   np.linalg.norm(parts, axis=(1, 2)), rtol=1e-10, atol=1e-14)


def test_grad_norms_are_the_norms_of_grad_hidden():
    trace = make_trace("gru")
    expected = np.sqrt((trace.grad_hidden**2).sum(axis=(2, 3)))
    np.testing.assert_allclose(engine.grad_norms(trace), expected, rtol=1e-13)


def test_norm_survives_huge_and_tiny_values():
    values = np.array([[3e200, 4e200], [3e-200, 4e-200], [np.inf, 1.0], [np.nan, 1.0]])
    got = engine.norm(values, axis=1)
    np.testing.assert_allclose(got[:2], [5e200, 5e-200], rtol=1e-14)
    assert got[2] == np.inf and np.isnan(got[3])


def finite_difference_jacobian(trace, layer, t, eps=1e-6):
    """d h_{T-1} / d h_t of one layer (batch element 0) by central differences, c_t held."""
    module = CELL_MODULES[trace.cell_type]
    params = trace.params
    x = trace.inputs if layer == 0 else trace.hidden[layer - 1]
    x_proj = x[t + 1:, :1] @ params[f"weight_ih_l{layer}"].T + params[f"bias_ih_l{layer}"]
    H = trace.hidden.shape[-1]
    columns = []
    for j in range(H):
        outs = []
        for sign in (1, -1):
            h = trace.hidden[layer, t, :1].copy()
            h[0, j] += sign * eps
            c = None if trace.cell is None else trace.cell[layer, t, :1]
            hidden, _ = module.forward(x_proj, params[f"weight_hh_l{layer}"],
                                       params[f"bias_hh_l{layer}"], h, c, trace.nonlinearity)
            outs.append(hidden[-1, 0])
        columns.append((outs[0] - outs[1]) / (2 * eps))
    return np.stack(columns, axis=1)  # (H, H): [i, j] = d h_{T-1}[i] / d h_t[j]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_jacobian_norms_match_finite_differences(cell):
    trace = make_trace(cell, seq_len=9)
    result = engine.jacobian_norms(trace)
    assert result.window_start == 0 and list(result.steps) == list(range(9))
    for layer in range(2):
        for index, t in enumerate(result.steps[:-1]):
            expected = np.linalg.norm(finite_difference_jacobian(trace, layer, t), 2)
            assert result.norms[layer, index] == pytest.approx(expected, rel=1e-6)
        assert result.norms[layer, -1] == pytest.approx(1.0)  # d h_T / d h_T = I


def test_jacobian_norms_report_the_window_they_could_afford():
    trace = make_trace("lstm", seq_len=40, hidden=8)
    result = engine.jacobian_norms(trace, max_elements=4 * 8 * 8 * 10, max_points=5)
    assert result.window_start == 30
    assert result.steps[0] == 30 and result.steps[-1] == 39 and len(result.steps) == 5
    full = engine.jacobian_norms(trace)
    np.testing.assert_allclose(result.norms, full.norms[:, result.steps], rtol=1e-9)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("truncation", [None, 4])
def test_loss_reach_equals_a_run_with_that_single_loss(cell, truncation):
    trace = make_trace(cell, truncation=truncation)
    reach = engine.loss_reach(trace)
    assert list(reach.loss_steps) == list(range(12))
    for index, t in enumerate(reach.loss_steps):
        only_t = np.full_like(trace.targets, -1)
        only_t[t] = trace.targets[t]
        single = engine.run(cell, trace.params, trace.inputs, only_t, truncation=truncation)
        np.testing.assert_allclose(reach.norms[index], engine.grad_norms(single),
                                   rtol=1e-10, atol=1e-300)


def test_loss_reach_shows_the_truncation_band():
    trace = make_trace("rnn", truncation=4, layers=1)
    reach = engine.loss_reach(trace)
    for index, t in enumerate(reach.loss_steps):
        row = reach.norms[index, 0]
        chunk_start = (t // 4) * 4
        assert np.all(row[t + 1:] == 0), "a loss cannot reach later states"
        assert np.all(row[:chunk_start] == 0), "truncation stops the loss at its chunk start"
        assert np.all(row[chunk_start:t + 1] > 0)


def test_loss_reach_subsamples_and_says_which_steps():
    trace = make_trace("gru", seq_len=30)
    reach = engine.loss_reach(trace, max_loss_steps=5)
    assert len(reach.loss_steps) == 5 and reach.loss_steps[-1] == 29
    assert reach.norms.shape == (5, 2, 30)


@pytest.mark.parametrize("cell,carry", [("lstm", "f"), ("gru", "z")])
def test_carry_gain_is_the_product_of_the_carry_gate(cell, carry):
    trace = make_trace(cell)
    gain = engine.carry_gain(trace)
    gate = trace.gates[carry]
    t = 3
    np.testing.assert_allclose(gain[:, t], np.prod(gate[:, t + 1:], axis=1), rtol=1e-12)
    assert np.all(gain[:, -1] == 1)
    assert engine.carry_gain(make_trace("rnn")) is None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_carry_path_is_the_whole_gradient_when_the_recurrent_weights_are_zero(cell):
    params = engine.init_params(cell, 3, 5, 4, 2, seed=3)
    for layer in range(2):
        params[f"weight_hh_l{layer}"][:] = 0.0  # the only way back in time is the carry
    inputs, targets = engine.random_batch(10, 2, 3, 4, loss_at="all", seed=4)
    trace = engine.run(cell, params, inputs, targets)
    full = engine.cell_grad_norms(trace) if cell == "lstm" else engine.grad_norms(trace)
    np.testing.assert_allclose(engine.carry_path_grad_norms(trace), full, rtol=1e-12)


def test_carry_path_is_smaller_than_full_gradient_would_suggest_only_by_the_h_path():
    trace = make_trace("lstm", truncation=3)
    carry = engine.carry_path_grad_norms(trace)
    assert carry.shape == (2, 12) and np.all(np.isfinite(carry))
    assert engine.carry_path_grad_norms(make_trace("rnn")) is None


def test_spectra_of_each_gate_block():
    params = engine.init_params("lstm", 3, 6, 2, init="orthogonal", scale=0.7, seed=1)
    spectra = engine.recurrent_spectra("lstm", params)
    assert list(spectra[0]) == ["i", "f", "g", "o"]
    for spectrum in spectra[0].values():
        np.testing.assert_allclose(spectrum.singular_values, 0.7, rtol=1e-12)
        np.testing.assert_allclose(np.abs(spectrum.eigenvalues), 0.7, rtol=1e-12)
    rnn = engine.init_params("rnn", 3, 6, 2, seed=2)
    s = engine.recurrent_spectra("rnn", rnn)[0]["h"]
    np.testing.assert_allclose(s.singular_values, np.linalg.svd(rnn["weight_hh_l0"])[1])
    assert np.all(np.diff(np.abs(s.eigenvalues)) <= 1e-12)


def test_pascanu_bound_values_and_overflow():
    assert engine.derivative_bound("sigmoid") == 0.25 and engine.derivative_bound("tanh") == 1.0
    last_only = np.eye(4)[-1]  # one error of norm 1 at the last step
    np.testing.assert_allclose(engine.pascanu_bound(last_only, 2.0 * 0.25),
                               [0.125, 0.25, 0.5, 1.0])
    log_bound = engine.pascanu_log10_bound(np.eye(1000)[-1], 10.0)
    assert log_bound[0] == pytest.approx(999.0) and log_bound[-1] == 0.0
    assert engine.pascanu_bound(np.eye(1000)[-1], 10.0)[0] == np.inf


@pytest.mark.parametrize("scale", [1.0, 3.0, 3.9])
def test_sigmoid_rnn_jacobians_obey_the_pascanu_bound(scale):
    trace = make_trace("rnn", nonlinearity="sigmoid", init="orthogonal", scale=scale,
                       seq_len=30, layers=1, loss_at="last")
    jac = engine.jacobian_norms(trace)
    bound = engine.pascanu_bound(np.eye(30)[-1], 0.25 * scale)
    assert np.all(jac.norms[0] <= bound[jac.steps] * (1 + 1e-9))
    # and so does the gradient of a loss at the last step
    norms = engine.grad_norms(trace)[0]
    assert np.all(norms <= norms[-1] * bound * (1 + 1e-9))
    if scale == 1.0:  # 0.25^29 ~ 3e-18: the gradient must have vanished
        assert norms[0] < 1e-15 * norms[-1]


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    trace = make_trace("lstm")
    for max_norm in (0.01, 1e6):
        clipped, total = engine.clip_grad_norm(trace.grads, max_norm)
        tensors = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
                   for g in trace.grads.values()]
        for tensor, g in zip(tensors, trace.grads.values(), strict=True):
            tensor.grad = torch.tensor(g)
        expected_total = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
        assert total == pytest.approx(float(expected_total), rel=1e-12)
        for tensor, key in zip(tensors, trace.grads, strict=True):
            np.testing.assert_allclose(clipped[key], tensor.grad.numpy(), rtol=1e-12)
    assert engine.global_norm(clipped) == pytest.approx(total)  # 1e6 leaves it alone


def test_clipping_by_norm_keeps_direction_and_by_value_does_not():
    trace = make_trace("rnn", init="orthogonal", scale=2.5, seq_len=30, layers=1)
    by_norm, total = engine.clip_grad_norm(trace.grads, 1.0)
    assert total > 1.0
    assert engine.global_norm(by_norm) == pytest.approx(1.0, rel=1e-5)
    assert engine.cosine(by_norm, trace.grads) == pytest.approx(1.0, abs=1e-12)
    by_value = engine.clip_grad_value(trace.grads, 1e-3)
    assert max(np.abs(g).max() for g in by_value.values()) <= 1e-3
    assert engine.cosine(by_value, trace.grads) < 0.999
    with pytest.raises(ValueError, match="max_norm"):
        engine.clip_grad_norm(trace.grads, 0.0)


def test_activation_composition_flattens_sigmoid_but_not_tanh_derivatives():
    values, products = engine.compose("sigmoid", np.linspace(-5, 5, 11), 10)
    assert values.shape == products.shape == (11, 11)
    assert np.ptp(values[-1]) < 1e-3, "sigmoid applied 10 times is almost flat"
    assert np.all(products[-1] <= 0.25**10 * (1 + 1e-12))
    _, tanh_products = engine.compose("tanh", np.array([0.0]), 10)
    assert tanh_products[-1, 0] == 1.0  # tanh'(0) = 1 and tanh(0) = 0 at every level
