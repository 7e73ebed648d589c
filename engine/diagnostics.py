"""What the pages plot, computed from a ``Trace``: where the gradient goes, how far back it gets.

Cheap (one pass over arrays the trace already holds): ``grad_norms``, ``contribution_norms``,
``carry_gain``, ``carry_path_grad_norms``. Dearer, because they push many upstream gradients
through the recurrence at once, and therefore bounded by an element budget (the caller can raise
it): ``jacobian_norms`` (H upstream vectors, so O(T H^2 G) memory) and ``loss_reach`` (one
upstream vector per loss step). Each says which steps it covered.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .bptt import Trace, backward_layers, target_mask
from .cells import CELL_MODULES, cuts_gradient
from .params import GATES

DEFAULT_MAX_ELEMENTS = 2**21  # about 16 MB per float64 work buffer


def norm(values: np.ndarray, axis) -> np.ndarray:
    """Euclidean norm over ``axis`` that neither overflows nor underflows for finite inputs
    (1e200 stays 1e200, 1e-200 stays 1e-200); inf if any entry is inf, nan if any is nan."""
    values = np.asarray(values, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        scale = np.max(np.abs(values), axis=axis, keepdims=True)
        usable = np.isfinite(scale) & (scale > 0)
        safe = np.where(usable, scale, 1.0)
        result = safe * np.sqrt(np.sum((values / safe) ** 2, axis=axis, keepdims=True))
        result = np.where(usable, result, scale)  # 0, inf or nan: the maximum says it all
        result = np.where(np.isnan(values).any(axis=axis, keepdims=True), np.nan, result)
    return np.squeeze(result, axis=axis)


def grad_norms(trace: Trace) -> np.ndarray:
    """||d loss / d h_t|| over batch and units, per layer and step. Returns (L, T)."""
    return norm(trace.grad_hidden, axis=(2, 3))


def cell_grad_norms(trace: Trace) -> np.ndarray | None:
    """||d loss / d c_t|| per layer and step for lstm, else None. Returns (L, T)."""
    return None if trace.grad_cell is None else norm(trace.grad_cell, axis=(2, 3))


def previous_hidden(trace: Trace) -> np.ndarray:
    """h_{t-1} for every step, h0 at t = 0. Returns (L, T, B, H)."""
    return np.concatenate([trace.initial_hidden[:, None], trace.hidden[:, :-1]], axis=1)


def weight_grad_contributions(trace: Trace, layer: int, steps=None) -> np.ndarray:
    """Step t's share of d loss / d weight_hh of ``layer``: the matrices whose sum over all t is
    exactly the BPTT gradient ``trace.grads[f"weight_hh_l{layer}"]``.

    steps: indices of the steps wanted (default all; each matrix is G*H x H, so ask for few when
    T is large). Returns (len(steps), G*H, H).
    """
    steps = np.arange(trace.seq_len) if steps is None else np.asarray(steps)
    grad = trace.grad_h_proj[layer, steps]  # (n, B, GH)
    h_prev = previous_hidden(trace)[layer, steps]  # (n, B, H)
    return np.einsum("tbg,tbh->tgh", grad, h_prev)


def contribution_norms(trace: Trace) -> np.ndarray:
    """Frobenius norm of each step's share of d loss / d weight_hh, per layer, without building
    the matrices: ||sum_b a_b h_b^T||^2 = sum_{b,c} (a_b . a_c)(h_b . h_c). Returns (L, T)."""
    grad, h_prev = trace.grad_h_proj, previous_hidden(trace)  # (L,T,B,GH), (L,T,B,H)
    # Scale each step's factors by their largest magnitude first: the Gram products square the
    # entries, which overflowed for finite shares above about 1e154 (then shown as overflow).
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        scale_a = np.max(np.abs(grad), axis=(2, 3))  # (L, T)
        scale_h = np.max(np.abs(h_prev), axis=(2, 3))
        usable = np.isfinite(scale_a) & np.isfinite(scale_h) & (scale_a > 0) & (scale_h > 0)
        a = grad / np.where(usable, scale_a, 1.0)[..., None, None]
        h = h_prev / np.where(usable, scale_h, 1.0)[..., None, None]
        gram = (np.einsum("ltbg,ltcg->ltbc", a, a)
                * np.einsum("ltbh,ltch->ltbc", h, h))  # (L, T, B, B)
        unit = np.sqrt(np.maximum(gram.sum(axis=(2, 3)), 0.0))
        result = np.where(usable, scale_a * scale_h * unit, scale_a * scale_h)
    bad = np.isnan(grad).any(axis=(2, 3)) | np.isnan(h_prev).any(axis=(2, 3))
    return np.where(bad, np.nan, result)


class JacobianNorms(NamedTuple):
    steps: np.ndarray  # (n,) the steps t covered, increasing, ending at T-1
    norms: np.ndarray  # (L, n) spectral norm of d h_{T-1} / d h_t along each layer
    batch_index: int  # which sequence of the batch
    window_start: int  # first step of the window the products were formed over (0 = complete)


def jacobian_norms(trace: Trace, *, batch_index: int = 0, max_points: int = 200,
                   max_elements: int = DEFAULT_MAX_ELEMENTS) -> JacobianNorms:
    """||d h_{T-1} / d h_t||_2, the spectral norm of the product of recurrent Jacobians along one
    layer, for one sequence of the batch.

    For lstm the state is (h, c); this is the derivative with respect to h_t with c_t held fixed
    (the cell path is ``carry_gain``). The products are formed over the last n steps, n as large
    as ``max_elements`` allows (n * G * H * H elements of work memory), and the norm is evaluated
    at up to ``max_points`` steps spread evenly over that window.
    """
    module = CELL_MODULES[trace.cell_type]
    T, H = trace.seq_len, trace.hidden.shape[-1]
    gates = GATES[trace.cell_type]
    window = int(min(T, max(1, max_elements // (gates * H * H))))
    start = T - window
    steps = np.unique(np.linspace(start, T - 1, min(window, max_points)).round().astype(int))
    b = slice(batch_index, batch_index + 1)
    norms = np.empty((trace.num_layers, len(steps)))
    upstream = np.zeros((window, H, 1, H))  # (n, H, 1, H): row j seeds d h_{T-1}[j]
    upstream[-1, :, 0, :] = np.eye(H)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for layer in range(trace.num_layers):
            cache = _rerun_window(trace, layer, start, b)
            _, _, rows, _ = module.backward(upstream, cache,
                                            trace.params[f"weight_hh_l{layer}"], None)
            norms[layer] = _spectral_norms(rows[steps - start, :, 0, :])  # (n, H, H) -> (n,)
    return JacobianNorms(steps, norms, batch_index, start)


class LossReach(NamedTuple):
    loss_steps: np.ndarray  # (N,) the loss steps t covered
    norms: np.ndarray  # (N, L, T): ||d L_t / d h_k|| of each layer; 0 for k > t


def loss_reach(trace: Trace, *, max_loss_steps: int = 64,
               max_elements: int = 4 * DEFAULT_MAX_ELEMENTS) -> LossReach:
    """How far back each step's loss reaches: ||d L_t / d h_k|| for loss steps t and every state
    step k, where L_t is the loss at step t alone (summed over the batch). With truncation k the
    matrix is zero outside a band: L_t reaches back only to the start of its chunk.

    Covers up to ``max_loss_steps`` of the steps that carry a target, evenly spread and always
    including the last, fewer if T * N * B * G * H would exceed ``max_elements``.
    """
    T, B, H = trace.hidden.shape[1:]
    gates = GATES[trace.cell_type]
    with_target = np.flatnonzero(target_mask(trace).any(axis=1))
    if with_target.size == 0:
        return LossReach(with_target, np.zeros((0, trace.num_layers, T)))
    affordable = max(1, max_elements // (T * B * gates * H))
    count = int(min(with_target.size, max_loss_steps, affordable))
    picks = np.unique(np.linspace(0, with_target.size - 1, count).round().astype(int))
    loss_steps = with_target[picks]
    upstream = np.zeros((T, len(loss_steps), B, H))  # (T, N, B, H)
    upstream[loss_steps, np.arange(len(loss_steps))] = trace.grad_output[-1, loss_steps]
    with np.errstate(over="ignore", invalid="ignore"):
        layers = backward_layers(trace.cell_type, trace.params, trace.caches, upstream,
                                 trace.truncation)
    reach = np.stack([norm(grad_hidden, axis=(2, 3)) for _, _, grad_hidden, _, _ in layers])
    return LossReach(loss_steps, reach.transpose(2, 0, 1))  # (L, T, N) -> (N, L, T)


def carry_gain(trace: Trace) -> np.ndarray | None:
    """How much of an error at the last step survives back to step t along the carry path alone:
    prod_{s=t+1}^{T-1} f_s for lstm (the constant error carousel: 1 when f = 1), and
    prod_{s=t+1}^{T-1} z_s for gru (PyTorch's z is the carry gate). None for rnn.
    Returns (L, T, B, H), 1 at t = T-1."""
    carry = {"lstm": "f", "gru": "z"}.get(trace.cell_type)
    if carry is None:
        return None
    gate = trace.gates[carry]  # (L, T, B, H)
    gain = np.ones_like(gate)
    # reverse cumulative product of gate[t+1:] along time
    gain[:, :-1] = np.cumprod(gate[:, :0:-1], axis=1)[:, ::-1]
    return gain


def carry_path_grad_norms(trace: Trace) -> np.ndarray | None:
    """||d loss / d (carry state)_t|| counting only paths that run along the carry: for lstm the
    cell c (dc_t = f_{t+1} dc_{t+1} + d loss/d h_t|outside * o_t (1 - tanh^2 c_t)), for gru the
    z-gated copy of h (dh_t = z_{t+1} dh_{t+1} + d loss / d h_t|outside). Set against
    ``cell_grad_norms`` / ``grad_norms`` it shows how much arrives through the carry and how much
    through the gates' recurrent weights. Truncation cuts it like the full gradient.
    None for rnn. Returns (L, T)."""
    if trace.cell_type == "rnn":
        return None
    g = trace.gates
    if trace.cell_type == "lstm":
        carry = g["f"]
        inject = trace.grad_output * g["o"] * (1.0 - np.tanh(trace.cell) ** 2)
    else:
        carry = g["z"]
        inject = trace.grad_output
    grad = np.empty_like(inject)  # (L, T, B, H)
    running = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(trace.seq_len - 1, -1, -1):
            running = grad[:, t] = inject[:, t] + running
            running = 0.0 if cuts_gradient(t, trace.truncation) else running * carry[:, t]
    return norm(grad, axis=(2, 3))


def _rerun_window(trace: Trace, layer: int, start: int, batch: slice):
    """Forward cache of ``layer`` for steps start..T-1 of one sequence, starting from its state
    at start - 1: the same numbers as the full run, over a shorter window."""
    params = trace.params
    x = trace.inputs if layer == 0 else trace.hidden[layer - 1]
    x_proj = (x[start:, batch] @ params[f"weight_ih_l{layer}"].T
              + params[f"bias_ih_l{layer}"])  # (n, 1, GH)
    h0 = (trace.hidden[layer, start - 1] if start else trace.initial_hidden[layer])[batch]
    c0 = None
    if trace.cell is not None:
        c0 = (trace.cell[layer, start - 1] if start else trace.initial_cell[layer])[batch]
    _, cache = CELL_MODULES[trace.cell_type].forward(
        x_proj, params[f"weight_hh_l{layer}"], params[f"bias_hh_l{layer}"], h0, c0,
        trace.nonlinearity)
    return cache


def _spectral_norms(matrices: np.ndarray) -> np.ndarray:
    """(n, H, H) -> (n,) largest singular values; nan/inf where a matrix is not finite."""
    finite = np.isfinite(matrices).all(axis=(1, 2))
    result = np.where(np.isnan(matrices).any(axis=(1, 2)), np.nan, np.inf)
    if finite.any():
        result[finite] = np.linalg.svd(matrices[finite], compute_uv=False)[:, 0]
    return result
