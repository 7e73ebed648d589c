"""Central-difference gradient checks of the engine's BPTT, in float64, for every cell.

The engine's own forward pass (``engine.run(...).loss``) is the function being differentiated, so a
backward pass that disagrees with its forward shows up here as a relative error well above 1e-6.
Sizes are kept small (D=2, H=3, K=4, T=5) so every entry of every parameter can be checked; D, H
and K differ so a transposed or mis-sliced weight cannot hide behind a square shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab import engine
from tests.engine_helpers import (
    CELL_CASE_IDS,
    CELL_CASES,
    copy_params,
    make_problem,
    numerical_grad,
    relative_error,
    relu_pre_activations,
)

SIZES = dict(seq_len=5, input_size=2, hidden_size=3, output_size=4)
TOLERANCE = 1e-6
# eps = 1e-5, not 1e-6: a central difference carries a rounding error of about |loss| * 1e-16 / eps
# (~3e-9 at eps = 1e-6 for a loss of ~26), which is ~1e-6 relative for the smallest gradients here
# (the bottom layer of a 3-layer lstm, ~1e-3). At 1e-5 that floor drops to ~1e-7 while the
# O(eps^2) truncation error stays near 1e-10, so a 1e-6 tolerance keeps a 10x margin.
EPS = 1e-5
RELU_KINK_MARGIN = 1e-3  # no relu pre-activation this close to 0: eps cannot cross a kink


def _problem(cell, nonlinearity, *, num_layers, batch, loss_at, truncation):
    """A problem whose analytic gradient is worth checking: for relu, no pre-activation near the
    kink at 0 (searched over seeds, and asserted); for every cell, no parameter whose gradient is
    exactly zero (a check of an all-zero gradient could not fail)."""
    for seed in range(40):
        params, inputs, targets, h0 = make_problem(
            cell, batch=batch, num_layers=num_layers, loss_at=loss_at, seed=seed, **SIZES)
        trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity,
                           truncation=truncation, h0=h0)
        if nonlinearity == "relu" and cell == "rnn":
            margin = np.min(np.abs(relu_pre_activations(params, inputs, trace)))
            if margin < RELU_KINK_MARGIN:
                continue
        if all(np.any(grad != 0) for grad in trace.grads.values()):
            return params, inputs, targets, h0, trace
    pytest.fail("no seed in range(40) gave a kink-free problem with every gradient non-zero")


def _chunked_reference(cell, trace, inputs, targets, h0, truncation):
    """Inputs, targets and h0 for a loss whose plain gradient is the truncated BPTT gradient.

    Truncation at chunk boundaries means: the state carries over, the gradient does not. So the
    truncated gradient is the sum over chunks of d loss_chunk / d theta with the chunk's incoming
    state held at its unperturbed value. Each chunk is rerun on its own from that fixed state; the
    chunks are independent, so they are stacked along the batch axis and one ``engine.run`` gives
    the sum of their losses. The last chunk may be shorter: it is padded at the end with zero
    inputs and target -1, which cannot change the loss of the steps before.
    """
    seq_len, batch, input_size = inputs.shape
    starts = list(range(0, seq_len, truncation))
    num_layers, hidden_size = trace.num_layers, trace.hidden.shape[-1]
    stacked_batch = len(starts) * batch
    chunk_inputs = np.zeros((truncation, stacked_batch, input_size))  # (k, C*B, D)
    chunk_targets = np.full((truncation, stacked_batch), -1, dtype=targets.dtype)
    chunk_h = np.zeros((num_layers, stacked_batch, hidden_size))  # (L, C*B, H)
    chunk_c = np.zeros_like(chunk_h)
    start_h, start_c = (h0 if cell == "lstm" else (h0, None)) if h0 is not None else (None, None)
    for chunk, start in enumerate(starts):
        length = min(truncation, seq_len - start)
        rows = slice(chunk * batch, (chunk + 1) * batch)
        chunk_inputs[:length, rows] = inputs[start:start + length]
        chunk_targets[:length, rows] = targets[start:start + length]
        if start == 0:
            if start_h is not None:
                chunk_h[:, rows] = start_h
            if start_c is not None:
                chunk_c[:, rows] = start_c
        else:
            chunk_h[:, rows] = trace.hidden[:, start - 1]
            if cell == "lstm":
                chunk_c[:, rows] = trace.cell[:, start - 1]
    chunk_h0 = (chunk_h, chunk_c) if cell == "lstm" else chunk_h
    return chunk_inputs, chunk_targets, chunk_h0


@pytest.mark.parametrize("loss_at", ["every", "last"])
@pytest.mark.parametrize("truncation", [None, 2])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
def test_every_parameter_gradient_matches_central_differences(
        cell, nonlinearity, num_layers, batch, truncation, loss_at):
    params, inputs, targets, h0, trace = _problem(
        cell, nonlinearity, num_layers=num_layers, batch=batch, loss_at=loss_at,
        truncation=truncation)

    if truncation is None:
        ref_inputs, ref_targets, ref_h0 = inputs, targets, h0
    else:
        ref_inputs, ref_targets, ref_h0 = _chunked_reference(
            cell, trace, inputs, targets, h0, truncation)
        # The reference's forward is the same computation: its loss at the unperturbed point is
        # the full run's loss, and so is the sum of the chunks run one at a time.
        one_at_a_time = 0.0
        for chunk in range(ref_inputs.shape[1] // batch):
            rows = slice(chunk * batch, (chunk + 1) * batch)
            chunk_h0 = (tuple(s[:, rows] for s in ref_h0) if cell == "lstm"
                        else ref_h0[:, rows])
            one_at_a_time += engine.run(cell, params, ref_inputs[:, rows], ref_targets[:, rows],
                                        nonlinearity=nonlinearity, h0=chunk_h0).loss
        stacked = engine.run(cell, params, ref_inputs, ref_targets, nonlinearity=nonlinearity,
                             h0=ref_h0).loss
        assert stacked == pytest.approx(trace.loss, rel=1e-13)
        assert one_at_a_time == pytest.approx(trace.loss, rel=1e-13)

    def loss_fn(perturbed):
        return engine.run(cell, perturbed, ref_inputs, ref_targets, nonlinearity=nonlinearity,
                          h0=ref_h0).loss

    perturbed = copy_params(params)
    errors = {}
    for key in params:
        numerical = numerical_grad(loss_fn, perturbed, key, eps=EPS)
        errors[key] = relative_error(numerical, trace.grads[key])
    bad = {key: err for key, err in errors.items() if not err < TOLERANCE}
    assert not bad, f"relative error >= {TOLERANCE} for {bad}"


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
def test_grad_hidden_matches_central_differences_on_the_rest_of_the_sequence(cell, nonlinearity):
    """One layer: d loss / d h_t is the head's gradient at step t plus the derivative of the loss
    of steps t+1.. with respect to their initial state h_t, which a rerun from a perturbed h_t
    measures. For lstm, the same rerun with c_t perturbed (h_t held) gives the part of grad_cell
    that flows back from step t+1 on."""
    params, inputs, targets, h0, trace = _problem(
        cell, nonlinearity, num_layers=1, batch=2, loss_at="every", truncation=None)
    seq_len = inputs.shape[0]
    for t in range(seq_len - 1):
        h_t, c_t = trace.hidden[:, t].copy(), None  # (1, B, H)
        if cell == "lstm":
            c_t = trace.cell[:, t].copy()

        def rest_loss(state_h, state_c, t=t):
            state = (state_h, state_c) if cell == "lstm" else state_h
            return engine.run(cell, params, inputs[t + 1:], targets[t + 1:],
                              nonlinearity=nonlinearity, h0=state).loss

        numerical_h = np.empty_like(h_t)
        numerical_c = np.empty_like(h_t)
        for index in np.ndindex(h_t.shape):
            for state, out in ((h_t, numerical_h), (c_t, numerical_c)):
                if state is None:
                    continue
                original = state[index]
                state[index] = original + EPS
                plus = rest_loss(h_t, c_t)
                state[index] = original - EPS
                minus = rest_loss(h_t, c_t)
                state[index] = original
                out[index] = (plus - minus) / (2 * EPS)
        numerical_h += trace.grad_output[:, t]
        assert relative_error(numerical_h, trace.grad_hidden[:, t]) < TOLERANCE, f"step {t}"
        if cell == "lstm":
            # grad_cell = (via h_t = o tanh(c_t)) + (via c_{t+1} = f c_t + i g)
            o_t = trace.gates["o"][:, t]
            via_h = trace.grad_hidden[:, t] * o_t * (1 - np.tanh(trace.cell[:, t]) ** 2)
            assert relative_error(numerical_c, trace.grad_cell[:, t] - via_h) < TOLERANCE, t
