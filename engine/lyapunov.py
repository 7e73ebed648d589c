"""Edge of chaos: Lyapunov exponents and Jacobian spectra of a recurrent layer along its own run.

A recorded run is read as a dynamical system driven by its inputs. For one layer and one
sequence, the state s_t (h_t for rnn and gru; the pair (h_t, c_t) stacked as one vector of
length 2H for lstm) follows s_t = F_t(s_{t-1}), where F_t is the cell's step with the layer's
input at step t (the data for layer 0, the recorded h of the layer below otherwise) held fixed
as recorded. Everything here is built from the step Jacobians J_t = d s_t / d s_{t-1} (S x S)
evaluated on the recorded states:

    rnn   J_t = diag(phi'(a_t)) W_hh                 phi' from the output: 1-h^2, h(1-h), [h>0]
    lstm  (PyTorch's nn.LSTM, gate order i, f, g, o; u = tanh(c_t))
          d c_t / d h_{t-1} = diag(c_{t-1} f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i(1-g^2)) W_hg
          d c_t / d c_{t-1} = diag(f)
          d h_t / d h_{t-1} = diag(u o(1-o)) W_ho + diag(o(1-u^2)) d c_t / d h_{t-1}
          d h_t / d c_{t-1} = diag(o(1-u^2) f)
          J_t = [[dh/dh, dh/dc], [dc/dh, dc/dc]]     (the state is (h, c), h first)
    gru   (PyTorch's nn.GRU, gate order r, z, n; m = W_hn h_{t-1} + b_hn)
          d n_t / d h_{t-1} = diag(1-n^2) (diag(r) W_hn + diag(m r(1-r)) W_hr)
          J_t = diag(z) + diag((h_{t-1} - n) z(1-z)) W_hz + diag(1-z) d n_t / d h_{t-1}

(These are the transposes of the backward recursions in ``engine.cells``, written out.)

Functions:
    step_jacobians                     the J_t themselves, (T, S, S).
    lyapunov_spectrum                  finite-time Lyapunov exponents by QR re-orthonormalisation
                                       (Benettin, Galgani, Giorgilli & Strelcyn 1980; for RNNs,
                                       Engelken, Wolf & Abbott 2020), in nats per step.
    jacobian_product_singular_values   the singular values of d h_{T-1} / d h_t.
    largest_exponent_grid              the largest exponent over a grid of weight scales and input
                                       scales (or lstm forget biases): a phase diagram.
    forward_states                     a forward pass only (no loss, no backward), returning the
                                       states the functions above need: cheaper than ``run``.

Each function that takes a trace accepts an ``engine.Trace`` (from ``engine.run``) or the
``States`` that ``forward_states`` returns.

Letters in shapes: T steps, B batch, D inputs, H hidden units, L layers, G gates, S state size
(H for rnn and gru, 2H for lstm), k number of exponents.
Pure NumPy, float64, stateless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .bptt import Trace, affine
from .cells import CELL_MODULES
from .data import random_batch
from .params import CELLS, GATE_NAMES, infer_sizes, init_params

_CHUNK_ELEMENTS = 2**20  # step Jacobians are assembled this many float64 entries at a time


class States(NamedTuple):
    """The forward states of a run, as ``forward_states`` returns them (a ``Trace`` has the same
    fields, so either can be passed where a trace is asked for)."""

    cell_type: str
    nonlinearity: str
    hidden: np.ndarray  # (L, T, B, H)
    cell: np.ndarray | None  # (L, T, B, H) lstm cell state, else None
    gates: dict[str, np.ndarray]  # {gate name: (L, T, B, H)}, {} for rnn
    initial_hidden: np.ndarray  # (L, B, H)
    initial_cell: np.ndarray | None  # (L, B, H) for lstm, else None


class LyapunovSpectrum(NamedTuple):
    """Result of ``lyapunov_spectrum``. Exponents are in nats per step (divide by ln 10 for
    decades per step); -inf where a frame direction was mapped exactly to zero."""

    exponents: np.ndarray  # (k,) for one layer, (L, k) for all; each row sorted descending
    running_largest: np.ndarray  # (n,) or (L, n): the largest estimate after each averaged step
    steps: np.ndarray  # (n,) the step t each running estimate ends at: warmup, ..., T-1
    layers: np.ndarray  # (L',) the layers covered
    warmup: int  # Jacobians J_0 .. J_{warmup-1} moved the frame but were not averaged
    k: int  # number of exponents (frame columns)
    batch_index: int  # which sequence of the batch


# The per-step diagonal factors of J_t ((T, H) each) and the H x H weight blocks of one layer.
Factors = dict[str, np.ndarray]


def forward_states(cell: str, params: dict[str, np.ndarray], inputs: np.ndarray, *,
                   nonlinearity: str = "tanh", h0: Any = None) -> States:
    """Forward pass only, with the cells' own ``forward``: no read-out, loss or backward.

    inputs: (T, B, D). h0: None (zeros), (L, B, H), or for lstm a pair (h0, c0).
    Returns ``States`` with hidden (L, T, B, H) etc. Costs about a third of ``engine.run``.
    Raises ValueError for an unknown cell or nonlinearity or inputs of the wrong shape.
    """
    if cell not in CELL_MODULES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if cell == "rnn" and nonlinearity not in ("tanh", "sigmoid", "relu"):
        raise ValueError(f"nonlinearity must be tanh, sigmoid or relu, got {nonlinearity!r}")
    input_size, H, _, L = infer_sizes(cell, params)
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 3 or inputs.shape[2] != input_size:
        raise ValueError(f"inputs must be (T, B, {input_size}), got {inputs.shape}")
    B = inputs.shape[1]
    if h0 is None:
        h_init = np.zeros((L, B, H))
        c_init = np.zeros((L, B, H)) if cell == "lstm" else None
    elif cell == "lstm":
        h_init, c_init = (np.asarray(a, dtype=np.float64) for a in h0)
    else:
        h_init, c_init = np.asarray(h0, dtype=np.float64), None
    module = CELL_MODULES[cell]
    hidden, cells, gates = [], [], []
    x = inputs
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(L):
            x_proj = affine(x, params[f"weight_ih_l{layer}"].T,
                            params[f"bias_ih_l{layer}"])  # (T, B, GH)
            x, cache = module.forward(x_proj, params[f"weight_hh_l{layer}"],
                                      params[f"bias_hh_l{layer}"], h_init[layer],
                                      None if c_init is None else c_init[layer], nonlinearity)
            hidden.append(x)
            if cell == "lstm":
                cells.append(cache["cell"])
            if cell != "rnn":
                gates.append(cache["gates"])  # (T, B, G, H)
    gate_dict = {}
    if gates:
        stacked = np.stack(gates)  # (L, T, B, G, H)
        gate_dict = {name: stacked[:, :, :, g] for g, name in enumerate(GATE_NAMES[cell])}
    return States(cell, nonlinearity if cell == "rnn" else "tanh", np.stack(hidden),
                  np.stack(cells) if cells else None, gate_dict, h_init, c_init)


def state_size(cell: str, hidden_size: int) -> int:
    """S: the length of the recurrent state, 2H for lstm (h and c), H otherwise."""
    return 2 * hidden_size if cell == "lstm" else hidden_size


def step_jacobians(cell: str, params: dict[str, np.ndarray], trace: Trace | States,
                   layer: int = 0, *, batch_index: int = 0, nonlinearity: str | None = None,
                   steps: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """J_t = d s_t / d s_{t-1} of ``layer`` along the recorded run of sequence ``batch_index``,
    the layer's input held fixed as recorded (equations in the module docstring).

    The state s is h for rnn and gru (S = H) and the stacked (h, c) for lstm (S = 2H, h first:
    J[:H, :H] = d h_t / d h_{t-1}, J[:H, H:] = d h_t / d c_{t-1}, and so on).
    steps: which t (default all 0..T-1); J_0 is taken at the initial state.
    nonlinearity: rnn only; None takes the trace's (a different value is an error).
    Returns (len(steps), S, S) float64: T S^2 numbers, so ask for few steps when T and H are large.
    Raises ValueError for a bad cell, layer, batch_index, nonlinearity or step.
    """
    factors, H = _layer_factors(cell, params, trace, layer, batch_index, nonlinearity)
    T = trace.hidden.shape[1]
    steps = np.arange(T) if steps is None else _check_steps(steps, T)
    S = state_size(cell, H)
    out = np.empty((len(steps), S, S))
    chunk = max(1, _CHUNK_ELEMENTS // (S * S))
    for start in range(0, len(steps), chunk):
        picked = steps[start:start + chunk]
        out[start:start + len(picked)] = _assemble(cell, factors, picked)
    return out


def lyapunov_spectrum(cell: str, params: dict[str, np.ndarray], trace: Trace | States, *,
                      layer: int | None = None, k: int | None = None, warmup: int = 0,
                      nonlinearity: str | None = None, batch_index: int = 0,
                      seed: int | np.random.Generator = 0) -> LyapunovSpectrum:
    """Finite-time Lyapunov exponents of one layer's recurrence (or of each layer) along the
    recorded run of one sequence, by QR re-orthonormalisation (Benettin et al. 1980; Engelken,
    Wolf & Abbott 2020, "Lyapunov spectra of chaotic recurrent neural networks").

    Definition. Start from an orthonormal frame Q_0 (S x k). For t = 0 .. T-1:
        Q_t R_t = J_t Q_{t-1}   (thin QR; R_t upper triangular, k x k)
    and the exponents are the k column averages (1 / n) sum_{t=warmup}^{T-1} ln |diag R_t|,
    n = T - warmup, sorted descending, in nats per step: the growth rates of 1, 2, ..., k
    dimensional volumes under the product J_{T-1} ... J_0, and, as T grows, the exponents of the
    input-driven system (with k = S, their sum is the mean of ln |det J_t|). The first
    ``warmup`` Jacobians move the frame towards its typical directions without being averaged.
    Frame: the first k coordinate axes when k = S (exact for diagonal and orthogonal J_t); a
    seeded random orthonormal frame when k < S, because coordinate axes can sit in an invariant
    subspace (say of a diagonal W_hh) and never see the fastest directions.
    Layers above the first are driven by the recorded h of the layer below, held fixed: these
    are the layer's own (conditional) exponents, not those of the whole stack.

    An exactly zero diagonal entry of R (a direction mapped to 0: a relu unit stuck at zero, a
    zero row of W_hh, a zero weight matrix) gives ln 0 = -inf for that exponent, a result and no
    warning. Exact zero rows of J_t Q are set aside before the QR (R does not change under a
    permutation of rows), so they give exact zeros in R rather than rounding noise; a rank loss
    that is not structural shows as a finite value near ln(1e-16) = -37 per step instead.

    Inputs:
        layer: None for every layer, else one layer index (negative counts from the top).
        k: number of exponents, 1 <= k <= S (default S, the full spectrum).
        warmup: 0 <= warmup < T.
        seed: for the random frame when k < S.
    Returns ``LyapunovSpectrum``: exponents (k,) for one layer, (L, k) for all; running_largest
    (n,) or (L, n), the largest of the k running averages after each averaged step (a
    convergence plot; its last value is exponents[..., 0]).
    Time: O(T S^2 k) for the products J_t Q (applied without forming J_t: O(T G H^2 k)) plus
    O(T S k^2) for the QRs, per layer. Memory: O(S k + n).
    Raises ValueError for a bad cell, layer, k, warmup, batch_index or nonlinearity.
    """
    L, T = trace.hidden.shape[:2]
    layers = np.arange(L) if layer is None else np.array([_check_layer(layer, L)])
    H = trace.hidden.shape[-1]
    S = state_size(cell, H)
    k = S if k is None else k
    if int(k) != k or not 1 <= k <= S:
        raise ValueError(f"k must be an integer in [1, {S}], got {k!r}")
    k = int(k)
    if int(warmup) != warmup or not 0 <= warmup < T:
        raise ValueError(f"warmup must be an integer in [0, {T}), got {warmup!r}")
    warmup = int(warmup)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    exponents = np.empty((len(layers), k))
    running = np.empty((len(layers), T - warmup))
    for row, lay in enumerate(layers):
        factors, _ = _layer_factors(cell, params, trace, int(lay), batch_index, nonlinearity)
        if k == S:
            frame = np.eye(S)
        else:
            frame, _ = np.linalg.qr(rng.standard_normal((S, k)))  # (S, k)
        sums, running[row] = _qr_sweep(cell, factors, frame, T, warmup)  # (k,), (n,)
        exponents[row] = np.sort(sums / (T - warmup))[::-1]
    if layer is not None:
        exponents, running = exponents[0], running[0]
    return LyapunovSpectrum(exponents, running, np.arange(warmup, T), layers, warmup, k,
                            batch_index)


def jacobian_product_singular_values(cell: str, params: dict[str, np.ndarray],
                                     trace: Trace | States,
                                     steps: Sequence[int] | np.ndarray, *, layer: int = -1,
                                     batch_index: int = 0, nonlinearity: str | None = None,
                                     log: bool = False) -> np.ndarray:
    """All singular values of d h_{T-1} / d h_t along ``layer``, for each t in ``steps``.

    The product J_{T-1} ... J_{t+1} of the step Jacobians is formed from the end backwards in
    one sweep shared by all the chosen t. For rnn and gru that is d h_{T-1} / d h_t itself. For
    lstm it is the h-by-h block of the joint (h, c) product: the derivative of h_{T-1} with
    respect to h_t with c_t held fixed, through every path from h_t forward (the gates at t+1
    feed both h_{t+1} and c_{t+1}, and c carries on); the same matrix whose largest singular
    value ``engine.jacobian_norms`` reports. The path from c_t alone (the carousel) is not in it.
    At t = T-1 the matrix is I, so every singular value is 1.

    The running product is rescaled by its largest entry at every step and the scale kept as a
    logarithm, so it cannot overflow or underflow inside the sweep: only the final exp can,
    giving inf (or 0) where the value really is beyond float64. log=True returns the natural
    logarithms instead, which never overflow (-inf for an exact 0).
    Returns (len(steps), H), each row sorted descending, in the order of ``steps``.
    Time: O((T - min(steps)) G H^2 S) for the sweep (J_t^T applied without forming J_t, as in
    backpropagation) plus O(len(steps) H^3) for the SVDs.
    Raises ValueError for a bad cell, layer, step, batch_index or nonlinearity.
    """
    L, T = trace.hidden.shape[:2]
    factors, H = _layer_factors(cell, params, trace, _check_layer(layer, L), batch_index,
                                nonlinearity)
    steps = _check_steps(steps, T)
    S = state_size(cell, H)
    log_values = np.empty((len(steps), H))
    wanted: dict[int, list[int]] = {}
    for index, t in enumerate(steps):
        wanted.setdefault(int(t), []).append(index)
    product = np.eye(S, H)  # (S, H): (d h_{T-1} / d s_t)^T, starting at t = T-1
    log_scale = 0.0  # the product's true value is exp(log_scale) * product
    first = int(steps.min())

    def record(t: int) -> None:
        if t in wanted:
            values = np.linalg.svd(product[:H], compute_uv=False)  # (H,) descending
            logs = np.full(H, -np.inf)
            positive = values > 0
            logs[positive] = np.log(values[positive]) + log_scale
            log_values[wanted[t]] = logs

    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        record(T - 1)
        for t in range(T - 1, first, -1):
            product = _apply_transpose(cell, factors, t, product)  # now for s_{t-1}
            top = np.max(np.abs(product))
            if top > 0 and np.isfinite(top):
                product /= top
                log_scale += np.log(top)
            record(t - 1)
        return log_values if log else np.exp(log_values)


def largest_exponent_grid(cell: str, weight_scales: Sequence[float],
                          column_values: Sequence[float], *, column: str = "input_scale",
                          input_scale: float = 1.0, forget_bias: float = 0.0,
                          hidden_size: int = 32, seq_len: int = 200, input_size: int = 4,
                          num_layers: int = 1, layer: int = -1, init: str = "default",
                          nonlinearity: str = "tanh", warmup: int | None = None,
                          seed: int = 0) -> np.ndarray:
    """The largest Lyapunov exponent (nats per step) over a grid: a phase diagram of order
    (< 0: nearby states converge, gradients vanish) against chaos (> 0: they diverge, gradients
    explode), the edge being 0.

    Rows: ``weight_scales``, the largest singular value of every H x H gate block of W_hh (the
    ``scale`` of ``engine.init_params``). Columns: ``column_values`` of ``column``, either
    "input_scale" (the standard deviation of the Gaussian inputs of ``engine.random_batch``) or,
    for lstm, "forget_bias"; the other one stays at the scalar given. Every grid point uses the
    same seed, so the weights differ only by their scale and the inputs only by theirs.
    Each point: ``init_params`` (K = 1 output), ``random_batch`` (B = 1), ``forward_states``, then
    ``lyapunov_spectrum`` with k = 1 (a seeded random unit vector) on ``layer``, after
    ``warmup`` steps (None: seq_len // 10). The warm-up matters: averaged from step 0, a single
    random vector carries a bias of about ln(its overlap with the growing directions) / T, e.g.
    -0.001 to -0.005 nats per step at T = 200 for an lstm whose true exponent is -5e-5.
    Returns (len(weight_scales), len(column_values)).
    Time per point: O(T L G H^2) for the forward pass plus O(T S^2) for the exponent.
    Raises ValueError for a bad column (or "forget_bias" with a cell other than lstm), and
    whatever ``init_params`` / ``forward_states`` / ``lyapunov_spectrum`` raise.
    """
    if column not in ("input_scale", "forget_bias"):
        raise ValueError(f"column must be 'input_scale' or 'forget_bias', got {column!r}")
    if column == "forget_bias" and cell != "lstm":
        raise ValueError("column='forget_bias' needs cell='lstm'")
    warmup = seq_len // 10 if warmup is None else warmup
    grid = np.empty((len(weight_scales), len(column_values)))
    for row, weight_scale in enumerate(weight_scales):
        for col, value in enumerate(column_values):
            scale_in = value if column == "input_scale" else input_scale
            bias = value if column == "forget_bias" else forget_bias
            params = init_params(cell, input_size, hidden_size, 1, num_layers, init=init,
                                 scale=float(weight_scale), forget_bias=float(bias), seed=seed)
            inputs, _ = random_batch(seq_len, 1, input_size, 1, input_scale=float(scale_in),
                                     seed=seed)
            states = forward_states(cell, params, inputs, nonlinearity=nonlinearity)
            grid[row, col] = lyapunov_spectrum(cell, params, states, layer=layer, k=1,
                                               warmup=warmup, seed=seed).exponents[0]
    return grid


# ---------------------------------------------------------------------------------------------
# Internals


def _check_layer(layer: int, num_layers: int) -> int:
    if int(layer) != layer or not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must be an integer in [-{num_layers}, {num_layers}), "
                         f"got {layer!r}")
    return int(layer) % num_layers


def _check_steps(steps: Any, seq_len: int) -> np.ndarray:
    steps = np.asarray(steps)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"steps must be a non-empty 1-D sequence of integers, got {steps!r}")
    if steps.min() < -seq_len or steps.max() >= seq_len:
        raise ValueError(f"steps must lie in [-{seq_len}, {seq_len}), got values in "
                         f"[{steps.min()}, {steps.max()}]")
    return steps % seq_len


def _layer_factors(cell: str, params: dict[str, np.ndarray], trace: Any, layer: int,
                   batch_index: int, nonlinearity: str | None) -> tuple[Factors, int]:
    """The per-step diagonal factors of J_t for one layer and sequence, each (T, H), plus the
    H x H weight blocks: everything ``_assemble`` needs. Returns (factors dict, H)."""
    if cell not in CELL_MODULES:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if trace.cell_type != cell:
        raise ValueError(f"cell {cell!r} does not match the trace's {trace.cell_type!r}")
    if nonlinearity is None:
        nonlinearity = trace.nonlinearity
    elif cell == "rnn" and nonlinearity != trace.nonlinearity:
        raise ValueError(f"nonlinearity {nonlinearity!r} differs from the trace's "
                         f"{trace.nonlinearity!r}")
    L, _, B, H = trace.hidden.shape
    layer = _check_layer(layer, L)
    if int(batch_index) != batch_index or not 0 <= batch_index < B:
        raise ValueError(f"batch_index must be an integer in [0, {B}), got {batch_index!r}")
    weight_hh = np.asarray(params[f"weight_hh_l{layer}"], dtype=np.float64)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    if weight_hh.shape != (gates * H, H):
        raise ValueError(f"weight_hh_l{layer} has shape {weight_hh.shape}, expected "
                         f"({gates * H}, {H}) for {cell!r}")
    blocks = weight_hh.reshape(gates, H, H)  # (G, H, H)
    h = trace.hidden[layer, :, batch_index]  # (T, H)
    h_prev = np.concatenate([trace.initial_hidden[layer, batch_index][None], h[:-1]])  # (T, H)
    with np.errstate(over="ignore", invalid="ignore"):
        if cell == "rnn":
            if nonlinearity == "tanh":
                dphi = 1.0 - h * h
            elif nonlinearity == "sigmoid":
                dphi = h * (1.0 - h)
            elif nonlinearity == "relu":
                dphi = (h > 0).astype(np.float64)
            else:
                raise ValueError(f"nonlinearity must be tanh, sigmoid or relu, got "
                                 f"{nonlinearity!r}")
            return {"W": blocks, "dphi": dphi}, H
        g = {name: trace.gates[name][layer, :, batch_index] for name in GATE_NAMES[cell]}
        if cell == "lstm":
            i, f, gg, o = g["i"], g["f"], g["g"], g["o"]
            c = trace.cell[layer, :, batch_index]  # (T, H)
            c_prev = np.concatenate([trace.initial_cell[layer, batch_index][None], c[:-1]])
            u = np.tanh(c)
            out_gain = o * (1.0 - u * u)  # d h_t / d c_t
            return {"W": blocks, "from_i": gg * i * (1 - i), "from_f": c_prev * f * (1 - f),
                    "from_g": i * (1 - gg * gg), "from_o": u * o * (1 - o),
                    "out_gain": out_gain, "f": f}, H
        r, z, n = g["r"], g["z"], g["n"]
        m = h_prev @ blocks[2].T + params[f"bias_hh_l{layer}"][2 * H:]  # (T, H) W_hn h + b_hn
        dn = 1.0 - n * n
        return {"W": blocks, "z": z, "from_z": (h_prev - n) * z * (1 - z),
                "from_n": (1 - z) * dn * r, "from_r": (1 - z) * dn * m * r * (1 - r)}, H


def _assemble(cell: str, factors: Factors, steps: np.ndarray) -> np.ndarray:
    """The step Jacobians J_t for t in ``steps`` (an index array), (len(steps), S, S)."""
    W = factors["W"]
    with np.errstate(over="ignore", invalid="ignore"):
        if cell == "rnn":
            return factors["dphi"][steps, :, None] * W[0]  # (n, H, H)
        if cell == "gru":
            W_r, W_z, W_n = W
            jac = (factors["from_z"][steps, :, None] * W_z
                   + factors["from_n"][steps, :, None] * W_n
                   + factors["from_r"][steps, :, None] * W_r)  # (n, H, H)
            diag = np.einsum("nii->ni", jac)  # a writable view of the diagonals
            diag += factors["z"][steps]
            return jac
        W_i, W_f, W_g, W_o = W
        n, H = len(steps), W_i.shape[0]
        jac = np.zeros((n, 2 * H, 2 * H))
        dc_dh = jac[:, H:, :H]  # (n, H, H) views into the joint Jacobian
        dc_dh[...] = (factors["from_i"][steps, :, None] * W_i
                      + factors["from_f"][steps, :, None] * W_f
                      + factors["from_g"][steps, :, None] * W_g)
        out_gain = factors["out_gain"][steps]  # (n, H)
        jac[:, :H, :H] = factors["from_o"][steps, :, None] * W_o + out_gain[:, :, None] * dc_dh
        f = factors["f"][steps]
        np.einsum("nii->ni", jac[:, :H, H:])[...] = out_gain * f  # d h_t / d c_{t-1}
        np.einsum("nii->ni", jac[:, H:, H:])[...] = f  # d c_t / d c_{t-1}
        return jac


def _apply(cell: str, factors: Factors, t: int, v: np.ndarray) -> np.ndarray:
    """J_t @ v without forming J_t: v (S, k) -> (S, k), O(G H^2 k). The equations are those of
    the module docstring, grouped around W_hh @ v_h (one matmul for all gates)."""
    W = factors["W"]  # (G, H, H)
    H = W.shape[1]
    if cell == "rnn":
        return factors["dphi"][t][:, None] * (W[0] @ v)
    projected = W.reshape(-1, H) @ v[:H]  # (G*H, k): every gate block times v_h
    if cell == "gru":
        p_r, p_z, p_n = projected.reshape(3, H, -1)
        return (factors["z"][t][:, None] * v + factors["from_z"][t][:, None] * p_z
                + factors["from_n"][t][:, None] * p_n + factors["from_r"][t][:, None] * p_r)
    p_i, p_f, p_g, p_o = projected.reshape(4, H, -1)
    dc = (factors["from_i"][t][:, None] * p_i + factors["from_f"][t][:, None] * p_f
          + factors["from_g"][t][:, None] * p_g + factors["f"][t][:, None] * v[H:])  # (H, k)
    dh = factors["from_o"][t][:, None] * p_o + factors["out_gain"][t][:, None] * dc
    return np.concatenate([dh, dc])


def _apply_transpose(cell: str, factors: Factors, t: int, v: np.ndarray) -> np.ndarray:
    """J_t^T @ v without forming J_t: v (S, k) -> (S, k). The backward recursions of
    ``engine.cells`` with v as the upstream gradient."""
    W = factors["W"]  # (G, H, H)
    H = W.shape[1]
    if cell == "rnn":
        return W[0].T @ (factors["dphi"][t][:, None] * v)
    if cell == "gru":
        gains = np.concatenate([factors["from_r"][t], factors["from_z"][t],
                                factors["from_n"][t]])[:, None]  # (3H, 1)
        return factors["z"][t][:, None] * v + W.reshape(-1, H).T @ (gains * np.tile(v, (3, 1)))
    v_h, v_c = v[:H], v[H:]
    total_c = v_c + factors["out_gain"][t][:, None] * v_h  # what reaches c_t, (H, k)
    gains = np.concatenate([factors["from_i"][t][:, None] * total_c,
                            factors["from_f"][t][:, None] * total_c,
                            factors["from_g"][t][:, None] * total_c,
                            factors["from_o"][t][:, None] * v_h])  # (4H, k)
    return np.concatenate([W.reshape(-1, H).T @ gains, factors["f"][t][:, None] * total_c])


def _qr_sweep(cell: str, factors: Factors, frame: np.ndarray, seq_len: int,
              warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """QR re-orthonormalisation started from ``frame`` (S, k) over J_0 .. J_{T-1}.
    Returns the k sums of ln |diag R_t| over t = warmup .. T-1 (k,) and, after each of those
    steps, the largest of the k running averages (T - warmup,)."""
    S, k = frame.shape
    sums = np.zeros(k)  # follows the frame's columns when ``_reorthonormalise`` reorders them
    running = np.empty(seq_len - warmup)
    q = frame
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        for t in range(seq_len):
            q, logs, order = _reorthonormalise(_apply(cell, factors, t, q))  # (S, k), (k,)
            if order is not None:
                sums = sums[order]
            if t >= warmup:
                sums += logs  # -inf + finite = -inf; +inf cannot occur (J_t is finite)
                running[t - warmup] = sums.max() / (t - warmup + 1)
    return sums, running


def _reorthonormalise(moved: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Thin QR of ``moved`` = J_t Q (S, k). Returns (Q (S, k) orthonormal, ln |diag R| (k,),
    order): ``order`` is None when the columns kept their places, else the permutation (new column
    j was old column order[j]) to apply to anything that follows the columns.

    Exact zeros are handled before the QR, so that they give exact zeros on R's diagonal (ln 0 =
    -inf) rather than rounding noise or a frame that depends on LAPACK's choices: rows of
    ``moved`` that are exactly zero are left out (R does not change when rows are permuted),
    columns that are exactly zero (frame directions mapped to 0) and any columns beyond the number
    of live rows collapse: they get -inf, move to the end of the frame, and are replaced by
    orthonormal vectors of the complement, so the surviving columns carry on as before.
    """
    S, k = moved.shape
    if k == 1:
        # One direction (the largest exponent): its QR is its norm. A LAPACK QR per step cost
        # about 7 ms of a default /explore request; a norm is a few microseconds.
        length = float(np.sqrt(moved[:, 0] @ moved[:, 0]))
        if length > 0 and np.isfinite(length):
            return moved / length, np.array([np.log(length)]), None
        if length == 0:  # the direction was mapped to 0: ln 0, and a fresh axis carries on
            fresh = np.zeros((S, 1))
            fresh[0, 0] = 1.0
            return fresh, np.array([-np.inf]), None
    nonzero = moved != 0
    live_rows = np.flatnonzero(nonzero.any(axis=1))
    live_cols = np.flatnonzero(nonzero.any(axis=0))
    if len(live_rows) == S and len(live_cols) == k:
        q, r = np.linalg.qr(moved)
        diag = np.abs(np.diag(r))
        logs = np.full(k, -np.inf)
        positive = diag > 0
        logs[positive] = np.log(diag[positive])
        return q, logs, None
    kept = min(len(live_rows), len(live_cols))
    q = np.zeros((S, k))
    logs = np.full(k, -np.inf)
    if kept:
        q_live, r = np.linalg.qr(moved[np.ix_(live_rows, live_cols)])  # (rows, kept), (kept, cols)
        q[live_rows, :kept] = q_live
        diag = np.abs(np.diag(r))
        positive = diag > 0
        logs[:kept][positive] = np.log(diag[positive])
    dead_cols = np.flatnonzero(~nonzero.any(axis=0))
    order = np.concatenate([live_cols, dead_cols])  # collapsed columns last
    if kept < k:  # complete the frame: complete QR of the kept columns spans the rest
        basis = np.linalg.qr(q[:, :kept], mode="complete")[0] if kept else np.eye(S)
        q[:, kept:] = basis[:, kept:k]
    return q, logs, order
