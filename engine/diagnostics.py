"""What the pages plot, computed from a ``Trace``: where the gradient goes, how far back it gets.

Cheap (one pass over arrays the trace already holds): ``grad_norms``, ``contribution_norms``,
``carry_gain``, ``carry_path_grad_norms``. Dearer, because they push many upstream gradients
through the recurrence at once, and therefore bounded by an element budget (the caller can raise
it): ``jacobian_norms`` (H upstream vectors, so O(T H^2 G) memory) and ``loss_reach`` (one
upstream vector per loss step). Each says which steps it covered.

Letters in shapes: T steps, B batch, H hidden units, L layers, G gate blocks, N loss steps,
n steps of a window. Norms are Euclidean over the axes named (batch and units unless said).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._types import BoolArray, Cache, FloatArray, IntArray
from .bptt import Trace, backward_layers, target_mask
from .cells import CELL_MODULES, cuts_gradient
from .params import CARRY_GATE, GATES

DEFAULT_MAX_ELEMENTS = 2**21  # about 16 MB per float64 work buffer


def norm(values: npt.ArrayLike, axis: int | tuple[int, ...]) -> FloatArray:
    """Euclidean norm over ``axis`` that neither overflows nor underflows for finite inputs
    (1e200 stays 1e200, 1e-200 stays 1e-200); inf if any entry is inf, nan if any is nan.
    Returns ``values``' shape without the axes in ``axis``."""
    values = np.asarray(values, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        scale = np.max(np.abs(values), axis=axis, keepdims=True)
        usable = np.isfinite(scale) & (scale > 0)
        safe = np.where(usable, scale, 1.0)
        result = safe * np.sqrt(np.sum((values / safe) ** 2, axis=axis, keepdims=True))
        result = np.where(usable, result, scale)  # 0, inf or nan: the maximum says it all
        result = np.where(np.isnan(values).any(axis=axis, keepdims=True), np.nan, result)
    return np.asarray(np.squeeze(result, axis=axis), dtype=np.float64)


def grad_norms(trace: Trace) -> FloatArray:
    """||d loss / d h_t|| over batch and units, per layer and step. Returns (L, T)."""
    return norm(trace.grad_hidden, axis=(2, 3))


def cell_grad_norms(trace: Trace) -> FloatArray | None:
    """||d loss / d c_t|| per layer and step for lstm, else None. Returns (L, T)."""
    return None if trace.grad_cell is None else norm(trace.grad_cell, axis=(2, 3))


def previous_hidden(trace: Trace) -> FloatArray:
    """h_{t-1} for every step, h0 at t = 0. Returns (L, T, B, H)."""
    return np.concatenate([trace.initial_hidden[:, None], trace.hidden[:, :-1]], axis=1)


def weight_grad_contributions(trace: Trace, layer: int,
                              steps: npt.ArrayLike | None = None) -> FloatArray:
    """Step t's share of d loss / d weight_hh of ``layer``: the matrices whose sum over all t is
    exactly the BPTT gradient ``trace.grads[f"weight_hh_l{layer}"]``.

    steps: indices of the steps wanted (default all; each matrix is G*H x H, so ask for few when
    T is large). Returns (len(steps), G*H, H), in the units of the gradient.

    Raises:
        ValueError: ``layer`` not in 0..L-1, or a step not in 0..T-1.
    """
    _check_layer(trace, layer)
    steps = np.arange(trace.seq_len) if steps is None else np.asarray(steps, dtype=np.int64)
    if steps.size and (steps.min() < 0 or steps.max() >= trace.seq_len):
        raise ValueError(f"steps must lie in 0..{trace.seq_len - 1}")
    grad = trace.grad_h_proj[layer, steps]  # (n, B, GH)
    h_prev = previous_hidden(trace)[layer, steps]  # (n, B, H)
    return np.einsum("tbg,tbh->tgh", grad, h_prev)


def contribution_norms(trace: Trace) -> FloatArray:
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
    """What ``jacobian_norms`` computed, and over which steps."""

    steps: IntArray  # (n,) the steps t covered, increasing, ending at T-1
    norms: FloatArray  # (L, n) spectral norm of d h_{T-1} / d h_t along each layer
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

    Returns:
        A ``JacobianNorms``: norms (L, n), unitless (a gain), over steps (n,).
    Raises:
        ValueError: ``batch_index`` not in 0..B-1, or ``max_points`` or ``max_elements`` < 1.
    """
    batch = trace.hidden.shape[2]
    if not 0 <= batch_index < batch:
        raise ValueError(f"batch_index must lie in 0..{batch - 1}, got {batch_index!r}")
    if max_points < 1 or max_elements < 1:
        raise ValueError(f"max_points and max_elements must be >= 1, got {max_points!r} and "
                         f"{max_elements!r}")
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
    """What ``loss_reach`` computed, and for which loss steps."""

    loss_steps: IntArray  # (N,) the loss steps t covered
    norms: FloatArray  # (N, L, T): ||d L_t / d h_k|| of each layer; 0 for k > t


def loss_reach(trace: Trace, *, max_loss_steps: int = 64,
               max_elements: int = 4 * DEFAULT_MAX_ELEMENTS) -> LossReach:
    """How far back each step's loss reaches: ||d L_t / d h_k|| for loss steps t and every state
    step k, where L_t is the loss at step t alone (summed over the batch). With truncation k the
    matrix is zero outside a band: L_t reaches back only to the start of its chunk.

    Covers up to ``max_loss_steps`` of the steps that carry a target, evenly spread and always
    including the last, fewer if T * N * B * G * H would exceed ``max_elements``.
    ``reach_band`` says where the matrix may be non-zero.

    Returns:
        A ``LossReach``: norms (N, L, T), in the units of the gradient, for loss_steps (N,).
    Raises:
        ValueError: ``max_loss_steps`` or ``max_elements`` < 1.
    """
    if max_loss_steps < 1 or max_elements < 1:
        raise ValueError(f"max_loss_steps and max_elements must be >= 1, got "
                         f"{max_loss_steps!r} and {max_elements!r}")
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
    reach = np.stack([norm(grads.grad_hidden, axis=(2, 3)) for grads in layers])
    return LossReach(loss_steps, reach.transpose(2, 0, 1))  # (L, T, N) -> (N, L, T)


def log_carry_gain(trace: Trace) -> FloatArray | None:
    """Natural log of the carry gain: how much of an error at the last step survives back to
    step t along the carry path alone, prod_{s=t+1}^{T-1} gate_s, with gate f for lstm (the
    constant error carousel of Hochreiter & Schmidhuber 1997: the gain stays 1 when f = 1) and
    z for gru (in PyTorch's ``nn.GRU`` convention z is the carry gate, Cho et al. 2014 call it
    1 - z).

    Summed in log space, so a gain of 10^-400 is still a number (ln gain = -921): the product
    itself underflows to 0. -inf where a gate is exactly 0.

    Returns:
        (L, T, B, H) ln gain, in nats; 0 at t = T-1. None for rnn (no carry).
    """
    carry = CARRY_GATE.get(trace.cell_type)
    if carry is None:
        return None
    gate = trace.gates[carry]  # (L, T, B, H)
    with np.errstate(divide="ignore"):
        logs = np.log(gate)
    out = np.zeros_like(logs)
    # reverse cumulative sum of ln gate[t+1:] along time
    out[:, :-1] = np.cumsum(logs[:, :0:-1], axis=1)[:, ::-1]
    return out


def carry_gain(trace: Trace) -> FloatArray | None:
    """The carry gain prod_{s=t+1}^{T-1} gate_s itself: exp of ``log_carry_gain`` (see there),
    0 where it underflows float64.

    Returns:
        (L, T, B, H), 1 at t = T-1; None for rnn.
    """
    log_gain = log_carry_gain(trace)
    if log_gain is None:
        return None
    with np.errstate(under="ignore"):
        return np.exp(log_gain)


def log_mean_exp(logs: npt.ArrayLike) -> float:
    """ln of the mean of exp(logs) over every entry, without underflow or overflow: the log of
    a mean gain from the logs of the gains (e.g. ``log_carry_gain(trace)[layer, t]``).

    Args:
        logs: any shape, natural logs (nats); -inf stands for 0.
    Returns:
        ln mean(exp(logs)); -inf when every entry is -inf, nan if any is nan.
    Raises:
        ValueError: ``logs`` is empty.
    """
    values = np.asarray(logs, dtype=np.float64)
    if values.size == 0:
        raise ValueError("log_mean_exp needs at least one value, got an empty array")
    top = float(np.max(values))
    if not np.isfinite(top):
        return top
    return top + float(np.log(np.mean(np.exp(values - top))))


def retention(norms: npt.ArrayLike) -> float:
    """How much of the gradient at the last step is still there at the first:
    ||d loss / d h_0|| / ||d loss / d h_{T-1}|| (a plain ratio, unitless).

    Args:
        norms: (T,) gradient norms of one layer, e.g. ``grad_norms(trace)[-1]``.
    Returns:
        The ratio; nan if either norm is 0 or not finite (no ratio to speak of).
    Raises:
        ValueError: ``norms`` is not one-dimensional with at least one step.
    """
    values = np.asarray(norms, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"norms must be one-dimensional (T,) with T >= 1, got shape "
                         f"{values.shape}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = float(values[0] / values[-1])
    return ratio if np.isfinite(ratio) else float("nan")


def reach_band(loss_steps: npt.ArrayLike, seq_len: int,
               truncation: int | None = None) -> BoolArray:
    """Where d L_t / d h_s may be non-zero in ``loss_reach``'s matrix: s <= t and, with truncated
    BPTT, s in the same chunk as t (s >= k * floor(t / k)), since truncation cuts the gradient
    at every chunk start (``engine.cells.cuts_gradient``).

    Args:
        loss_steps: (N,) the loss steps t, each in 0..T-1.
        seq_len: T >= 1.
        truncation: None for full BPTT, or the chunk length k >= 1.
    Returns:
        (N, T) bool.
    Raises:
        ValueError: ``seq_len`` < 1, ``truncation`` neither None nor an integer >= 1, or a loss
            step outside 0..T-1.
    """
    if int(seq_len) != seq_len or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1, got {seq_len!r}")
    if truncation is not None and (int(truncation) != truncation or truncation < 1):
        raise ValueError(f"truncation must be None or an integer >= 1, got {truncation!r}")
    losses = np.asarray(loss_steps, dtype=np.int64).reshape(-1, 1)  # (N, 1)
    if losses.size and (losses.min() < 0 or losses.max() >= seq_len):
        raise ValueError(f"loss_steps must lie in 0..{seq_len - 1}, got "
                         f"[{losses.min()}, {losses.max()}]")
    states = np.arange(seq_len)[None, :]  # (1, T)
    start = 0 if truncation is None else (losses // truncation) * truncation  # (N, 1)
    return (states <= losses) & (states >= start)


def carry_path_grad_norms(trace: Trace) -> np.ndarray | None:
    """||d loss / d (carry state)_t|| counting only paths that run along the carry: for lstm the
    cell c (dc_t = f_{t+1} dc_{t+1} + d loss/d h_t|outside * o_t (1 - tanh^2 c_t)), for gru the
    z-gated copy of h (dh_t = z_{t+1} dh_{t+1} + d loss / d h_t|outside). Set against
    ``cell_grad_norms`` / ``grad_norms`` it shows how much arrives through the carry and how much
    through the gates' recurrent weights. Truncation cuts it like the full gradient.
    The lstm recursion is the constant error carousel of Hochreiter & Schmidhuber (1997) with
    the forget gate of Gers et al. (2000); the gru one follows PyTorch's ``nn.GRU`` equations.
    None for rnn. Returns (L, T), in the units of the gradient."""
    if trace.cell_type == "rnn":
        return None
    g = trace.gates
    carry = g[CARRY_GATE[trace.cell_type]]  # (L, T, B, H)
    inject: FloatArray = trace.grad_output
    if trace.cell is not None:  # lstm: what enters c from d loss / d h_t
        inject = inject * g["o"] * (1.0 - np.tanh(trace.cell) ** 2)
    grad = np.empty_like(inject)  # (L, T, B, H)
    running: FloatArray | float = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(trace.seq_len - 1, -1, -1):
            running = inject[:, t] + running
            grad[:, t] = running
            running = 0.0 if cuts_gradient(t, trace.truncation) else running * carry[:, t]
    return norm(grad, axis=(2, 3))


def _rerun_window(trace: Trace, layer: int, start: int, batch: slice) -> Cache:
    """Forward cache of ``layer`` for steps start..T-1 of one sequence, starting from its state
    at start - 1: the same numbers as the full run, over a shorter window."""
    params = trace.params
    x = trace.inputs if layer == 0 else trace.hidden[layer - 1]
    x_proj = (x[start:, batch] @ params[f"weight_ih_l{layer}"].T
              + params[f"bias_ih_l{layer}"])  # (n, 1, GH)
    h0 = (trace.hidden[layer, start - 1] if start else trace.initial_hidden[layer])[batch]
    c0 = None
    if trace.cell is not None and trace.initial_cell is not None:  # lstm
        c0 = (trace.cell[layer, start - 1] if start else trace.initial_cell[layer])[batch]
    result = CELL_MODULES[trace.cell_type].forward(
        x_proj, params[f"weight_hh_l{layer}"], params[f"bias_hh_l{layer}"], h0, c0,
        trace.nonlinearity)
    cache: Cache = result[1]
    return cache


def _spectral_norms(matrices: FloatArray) -> FloatArray:
    """(n, H, H) -> (n,) largest singular values; nan/inf where a matrix is not finite."""
    finite = np.isfinite(matrices).all(axis=(1, 2))
    result = np.where(np.isnan(matrices).any(axis=(1, 2)), np.nan, np.inf)
    if finite.any():
        result[finite] = np.linalg.svd(matrices[finite], compute_uv=False)[:, 0]
    return result


def _check_layer(trace: Trace, layer: int) -> None:
    if isinstance(layer, bool) or int(layer) != layer or not 0 <= layer < trace.num_layers:
        raise ValueError(f"layer must be an integer in 0..{trace.num_layers - 1}, got "
                         f"{layer!r}")


def step_jacobian_norms(trace: Trace, layer: int, *, batch_index: int = 0,
                        max_elements: int = 4 * DEFAULT_MAX_ELEMENTS) -> FloatArray:
    """||J_t||_2 = ||d s_t / d s_{t-1}||_2, the factor one step back multiplies the error on the
    state by (at most), for every step t of one layer along one sequence of the batch.

    The state s is h for rnn and gru and the stacked (h, c) for lstm (``lyapunov.step_jacobians``
    holds the equations). t = 0 has no previous step inside the sequence, so entry 0 is nan, as
    is every step before the last n steps when T * S^2 exceeds ``max_elements`` (n * S^2 <=
    ``max_elements``): the norms always cover the end, where the backward pass starts.
    Returns (T,) float64, unitless; inf or nan where a Jacobian is not finite.
    Raises ValueError for a bad layer or batch_index.
    """
    from .lyapunov import state_size, step_jacobians  # lyapunov imports nothing from here

    _check_layer(trace, layer)
    T, H = trace.seq_len, trace.hidden.shape[-1]
    size = state_size(trace.cell_type, H)
    window = int(min(T - 1, max(1, max_elements // (size * size))))
    out = np.full(T, np.nan)
    if T < 2:
        return out
    steps = np.arange(T - window, T)  # (n,)
    with np.errstate(over="ignore", invalid="ignore"):
        jacobians = step_jacobians(trace.cell_type, trace.params, trace, layer,
                                   batch_index=batch_index, steps=steps)  # (n, S, S)
    out[steps] = _spectral_norms(jacobians)
    return out
