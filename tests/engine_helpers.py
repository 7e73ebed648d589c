"""Shared helpers for the engine tests: small problems, central differences, relative errors.

Letters in shapes: T steps, B batch, D inputs, H hidden units, K classes, L layers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gradient_flow_lab import engine

# (cell, nonlinearity): every recurrence the engine offers. The nonlinearity only matters for rnn.
CELL_CASES = (
    ("rnn", "tanh"),
    ("rnn", "sigmoid"),
    ("rnn", "relu"),
    ("lstm", "tanh"),
    ("gru", "tanh"),
)
CELL_CASE_IDS = tuple(cell if cell != "rnn" else f"rnn-{nl}" for cell, nl in CELL_CASES)


def make_problem(
    cell: str,
    *,
    seq_len: int,
    batch: int,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    loss_at: str = "every",
    seed: int = 0,
    init: str = "default",
    random_h0: bool = True,
):
    """Parameters, inputs (T, B, D), targets (T, B) and h0 for one small, reproducible problem.

    loss_at: "every" (a target at every step) or "last" (targets -1 except at the last step).
    random_h0: a non-zero initial state ((h0, c0) for lstm), else None (zeros).
    """
    params = engine.init_params(cell, input_size, hidden_size, output_size, num_layers,
                                init=init, seed=seed)
    rng = np.random.default_rng(10_000 + seed)
    inputs = rng.normal(size=(seq_len, batch, input_size))  # (T, B, D)
    targets = rng.integers(0, output_size, size=(seq_len, batch))  # (T, B)
    if loss_at == "last":
        targets[:-1] = -1
    elif loss_at != "every":
        raise ValueError(f"loss_at must be 'every' or 'last', got {loss_at!r}")
    h0 = None
    if random_h0:
        shape = (num_layers, batch, hidden_size)  # (L, B, H)
        h0 = 0.5 * rng.normal(size=shape)
        if cell == "lstm":
            h0 = (h0, 0.5 * rng.normal(size=shape))
    return params, inputs, targets, h0


def copy_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.array(value, dtype=np.float64, copy=True) for key, value in params.items()}


def numerical_grad(loss_fn: Callable[[dict[str, np.ndarray]], float],
                   params: dict[str, np.ndarray], key: str, eps: float = 1e-6) -> np.ndarray:
    """Central difference (f(x + eps) - f(x - eps)) / 2 eps of ``loss_fn`` for every entry of
    ``params[key]``. ``params`` is restored before returning."""
    flat = params[key].reshape(-1)
    assert np.shares_memory(flat, params[key]), "params must be contiguous to perturb in place"
    grad = np.empty(flat.shape)
    for index in range(flat.size):
        original = flat[index]
        flat[index] = original + eps
        loss_plus = loss_fn(params)
        flat[index] = original - eps
        loss_minus = loss_fn(params)
        flat[index] = original
        grad[index] = (loss_plus - loss_minus) / (2.0 * eps)
    return grad.reshape(params[key].shape)


def relative_error(numerical: np.ndarray, analytic: np.ndarray, tiny: float = 1e-300) -> float:
    """cs231n's relative error, over a whole parameter: max |num - ana| / max(|num| + |ana|)."""
    worst = np.max(np.abs(numerical - analytic))
    size = np.max(np.abs(numerical) + np.abs(analytic))
    return float(worst / max(size, tiny))


def max_abs_diff_ratio(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| relative to max(1, max |expected|): a scale-aware closeness."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(1.0, np.max(np.abs(expected))))


def relu_pre_activations(params, inputs, trace) -> np.ndarray:
    """(L, T, B, H) pre-activations W_ih x + b_ih + W_hh h_{t-1} + b_hh of a relu rnn's run."""
    pre = []
    x = inputs
    for layer in range(trace.num_layers):
        h_prev = np.concatenate([trace.initial_hidden[layer][None], trace.hidden[layer, :-1]])
        pre.append(x @ params[f"weight_ih_l{layer}"].T + params[f"bias_ih_l{layer}"]
                   + h_prev @ params[f"weight_hh_l{layer}"].T + params[f"bias_hh_l{layer}"])
        x = trace.hidden[layer]
    return np.stack(pre)
