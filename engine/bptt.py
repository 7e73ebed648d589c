"""Forward pass and exact backpropagation through time for stacked rnn / lstm / gru networks.

Read-out and loss, both with reduction "sum":

    y_t = head.weight @ h_t^{top} + head.bias                                (T, B, K)
    "cross_entropy" (classification, as ``nn.CrossEntropyLoss(reduction="sum", ignore_index=-1)``):
        loss = sum over (t, b) with targets[t, b] >= 0 of -log softmax(y_t[b])[targets[t, b]]
    "mse" (regression, as ``nn.MSELoss(reduction="sum")`` over the steps with a target):
        loss = sum over (t, b) whose target row is not NaN of ||y_t[b] - targets[t, b]||^2

Letters in shapes: T steps, B batch, D inputs, H hidden units, K classes, L layers, G gates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._types import AnyArray, BoolArray, Cache, FloatArray, Params
from .cells import CELL_MODULES
from .params import GATE_NAMES, infer_sizes


@dataclass(frozen=True)
class Trace:
    """Everything one forward + backward pass computed. Arrays are float64.

    loss:          total loss (float; inf or nan if the run overflowed).
    step_loss:     (T,) loss at each step, summed over the batch (0 where no target).
    logits:        (T, B, K).
    hidden:        (L, T, B, H) hidden state h_t of every layer.
    grad_hidden:   (L, T, B, H) d loss / d h_t, the total derivative: what ``h_t.retain_grad()``
                   gives in PyTorch (with truncation, only what flows inside h_t's chunk).
    grad_output:   (L, T, B, H) the part of grad_hidden arriving from outside the layer's own
                   recurrence (the head for the top layer, the layer above otherwise).
    cell:          (L, T, B, H) lstm cell state c_t, else None.
    grad_cell:     (L, T, B, H) d loss / d c_t for lstm, else None.
    gates:         {gate name: (L, T, B, H)}: lstm "i", "f", "g", "o"; gru "r", "z", "n";
                   {} for rnn.
    grad_h_proj:   (L, T, B, G*H) d loss / d (W_hh h_{t-1} + b_hh) at each step; step t's share of
                   d loss / d W_hh is grad_h_proj[l, t].T @ h_{t-1}.
    grads:         d loss / d params, same keys and shapes as the params.
    overflow_step: first step t whose forward values (hidden or cell, any layer) are inf or nan,
                   else None.
    grad_overflow_step: the first step the backward sweep reached (the largest t) where
                   grad_hidden is inf or nan, else None.
    """

    cell_type: str
    nonlinearity: str
    truncation: int | None
    loss: float
    step_loss: FloatArray
    logits: FloatArray
    hidden: FloatArray
    grad_hidden: FloatArray
    grad_output: FloatArray
    cell: FloatArray | None
    grad_cell: FloatArray | None
    gates: dict[str, FloatArray]
    grad_h_proj: FloatArray
    grads: Params
    initial_hidden: FloatArray  # (L, B, H)
    initial_cell: FloatArray | None  # (L, B, H) for lstm
    inputs: FloatArray  # (T, B, D)
    targets: AnyArray  # (T, B) class indices, or (T, B, K) floats for "mse"
    loss_kind: str  # "cross_entropy" | "mse"
    overflow_step: int | None
    grad_overflow_step: int | None
    params: Params = field(repr=False)
    caches: tuple[Cache, ...] = field(repr=False)  # per-layer forward caches, for diagnostics

    @property
    def num_layers(self) -> int:
        """L."""
        return int(self.hidden.shape[0])

    @property
    def seq_len(self) -> int:
        """T."""
        return int(self.hidden.shape[1])


InitialState = npt.ArrayLike | tuple[npt.ArrayLike, npt.ArrayLike] | None


def run(cell: str, params: Params, inputs: npt.ArrayLike, targets: npt.ArrayLike, *,
        nonlinearity: str = "tanh", truncation: int | None = None, h0: InitialState = None,
        loss: str = "cross_entropy") -> Trace:
    """Forward pass, loss and full (or truncated) BPTT.

    cell:        "rnn" | "lstm" | "gru".
    params:      dict as ``engine.init_params`` (PyTorch state_dict keys).
    inputs:      (T, B, D) floats, sequence first.
    targets:     "cross_entropy": (T, B) ints in [0, K), or -1 for "no loss at this step";
                 "mse": (T, B, K) floats, a row of NaN for "no loss at this step".
    nonlinearity: rnn only: "tanh" | "sigmoid" | "relu".
    truncation:  None for full BPTT, or k >= 1: the sequence runs in chunks of k steps; states
                 carry across chunk boundaries, gradients do not (``.detach()`` at each boundary);
                 the chunks' gradients are summed.
    h0:          None (zeros), or (L, B, H); for lstm None or a pair (h0, c0) of (L, B, H).
    loss:        "cross_entropy" (default) or "mse".
    Overflow is a result, not an error: the run completes and reports ``overflow_step``.

    Raises:
        ValueError: unknown cell, nonlinearity or loss; truncation not None or an integer >= 1;
            params whose shapes do not fit the cell; inputs, targets or h0 of the wrong shape,
            or targets outside [0, K) (-1 allowed) for cross-entropy.
    """
    input_size, H, K, L = infer_sizes(cell, params)
    inputs, targets, loss_fn = _checked_arrays(cell, nonlinearity, truncation, loss, inputs,
                                               targets, input_size, K)
    T, B, _ = inputs.shape
    h0, c0 = _initial_state(cell, h0, L, B, H)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        caches, layer_inputs, hidden = _forward_layers(cell, params, inputs, h0, c0,
                                                       nonlinearity)
        logits = affine(hidden[-1], params["head.weight"].T, params["head.bias"])  # (T, B, K)
        step_loss, grad_logits = loss_fn(logits, targets)
        grads = {
            "head.weight": grad_logits.reshape(-1, K).T @ hidden[-1].reshape(-1, H),  # (K, H)
            "head.bias": grad_logits.sum(axis=(0, 1)),
        }
        grad_top = affine(grad_logits, params["head.weight"])  # (T, B, H)
        backward = backward_layers(cell, params, caches, grad_top, truncation)
        for layer, layer_grads in enumerate(backward):
            h_prev = np.concatenate([h0[layer][None], hidden[layer, :-1]])  # (T, B, H)
            grads.update(_weight_grads(layer, layer_grads, layer_inputs[layer], h_prev))

    grad_hidden = np.stack([b.grad_hidden for b in backward])  # (L, T, B, H)
    cell_state = np.stack([c["cell"] for c in caches]) if cell == "lstm" else None
    gates = {}
    if cell != "rnn":
        stacked = np.stack([c["gates"] for c in caches])  # (L, T, B, G, H)
        gates = {name: stacked[:, :, :, k] for k, name in enumerate(GATE_NAMES[cell])}
    grad_cells = [b.grad_cell for b in backward if b.grad_cell is not None]
    return Trace(
        cell_type=cell,
        nonlinearity=nonlinearity if cell == "rnn" else "tanh",
        truncation=truncation,
        loss=float(step_loss.sum()),
        step_loss=step_loss,
        logits=logits,
        hidden=hidden,
        grad_hidden=grad_hidden,
        grad_output=np.stack([b.grad_output for b in backward]),
        cell=cell_state,
        grad_cell=np.stack(grad_cells) if cell == "lstm" else None,
        gates=gates,
        grad_h_proj=np.stack([b.grad_h_proj for b in backward]),
        grads={key: grads[key] for key in params},  # same key order as params
        initial_hidden=h0,
        initial_cell=c0,
        inputs=inputs,
        targets=targets,
        loss_kind=loss,
        overflow_step=_first_nonfinite_step(hidden if cell_state is None
                                            else np.concatenate([hidden, cell_state])),
        grad_overflow_step=_last_nonfinite_step(grad_hidden),
        params=params,
        caches=tuple(caches),
    )


LossFn = Callable[[FloatArray, AnyArray], tuple[FloatArray, FloatArray]]


def _checked_arrays(cell: str, nonlinearity: str, truncation: int | None, loss: str,
                    inputs: npt.ArrayLike, targets: npt.ArrayLike, input_size: int,
                    num_classes: int) -> tuple[FloatArray, AnyArray, LossFn]:
    """``run``'s arguments checked: inputs as float64 (T, B, D), the targets in the loss's
    form, and the loss function. Raises the ValueErrors ``run`` lists."""
    if cell not in CELL_MODULES:
        raise ValueError(f"cell must be one of {sorted(CELL_MODULES)}, got {cell!r}")
    if cell == "rnn" and nonlinearity not in ("tanh", "sigmoid", "relu"):
        raise ValueError(f"nonlinearity must be tanh, sigmoid or relu, got {nonlinearity!r}")
    if truncation is not None and (int(truncation) != truncation or truncation < 1):
        raise ValueError(f"truncation must be None or an integer >= 1, got {truncation!r}")
    K = num_classes
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets)
    if x.ndim != 3 or x.shape[2] != input_size:
        raise ValueError(f"inputs must be (T, B, {input_size}), got {x.shape}")
    T, B, _ = x.shape
    if loss == "cross_entropy":
        if y.shape != (T, B) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"targets must be integers of shape {(T, B)}, got {y.dtype} "
                             f"{y.shape}")
        if y.size and (y.min() < -1 or y.max() >= K):
            raise ValueError(f"targets must be in [0, {K}) or -1, got values in "
                             f"[{y.min()}, {y.max()}]")
        return x, y, _cross_entropy
    if loss == "mse":
        y = y.astype(np.float64)
        if y.shape != (T, B, K):
            raise ValueError(f"mse targets must be floats of shape {(T, B, K)}, got {y.shape}")
        return x, y, _squared_error
    raise ValueError(f"loss must be 'cross_entropy' or 'mse', got {loss!r}")


def _forward_layers(cell: str, params: Params, inputs: FloatArray, h0: FloatArray,
                    c0: FloatArray | None, nonlinearity: str
                    ) -> tuple[list[Cache], list[FloatArray], FloatArray]:
    """The stacked forward pass, layer by layer; each layer's whole input projection is one
    matrix product. inputs: (T, B, D); h0, c0: (L, B, H).
    Returns the L cell caches, each layer's input ((T, B, D) or (T, B, H)) and the hidden
    states (L, T, B, H)."""
    module = CELL_MODULES[cell]
    caches: list[Cache] = []
    layer_inputs: list[FloatArray] = []
    layer_hidden: list[FloatArray] = []
    x = inputs
    for layer in range(len(h0)):
        x_proj = affine(x, params[f"weight_ih_l{layer}"].T,
                        params[f"bias_ih_l{layer}"])  # (T, B, GH)
        h, cache = module.forward(x_proj, params[f"weight_hh_l{layer}"],
                                  params[f"bias_hh_l{layer}"], h0[layer],
                                  None if c0 is None else c0[layer], nonlinearity)
        layer_inputs.append(x)
        caches.append(cache)
        layer_hidden.append(h)
        x = h
    return caches, layer_inputs, np.stack(layer_hidden)


def _weight_grads(layer: int, grads: LayerGrads, x: FloatArray, h_prev: FloatArray) -> Params:
    """One layer's weight gradients, each one matrix product over all steps (BPTT's sum over
    time). x: (T, B, D) the layer's input; h_prev: (T, B, H) the state each step read."""
    T, B, H = h_prev.shape
    return {
        f"weight_ih_l{layer}": (grads.grad_x_proj.reshape(T * B, -1).T
                                @ x.reshape(T * B, -1)),  # (GH, D)
        f"bias_ih_l{layer}": grads.grad_x_proj.sum(axis=(0, 1)),
        f"weight_hh_l{layer}": (grads.grad_h_proj.reshape(T * B, -1).T
                                @ h_prev.reshape(T * B, H)),  # (GH, H)
        f"bias_hh_l{layer}": grads.grad_h_proj.sum(axis=(0, 1)),
    }


class LayerGrads(NamedTuple):
    """One layer's backward results, each with grad_top's leading axes (T, ..., B, ·)."""

    grad_x_proj: FloatArray  # d loss / d (W_ih x_t + b_ih), (T, ..., B, G*H)
    grad_h_proj: FloatArray  # d loss / d (W_hh h_(t-1) + b_hh), (T, ..., B, G*H)
    grad_hidden: FloatArray  # d loss / d h_t, total, (T, ..., B, H)
    grad_cell: FloatArray | None  # d loss / d c_t for lstm, else None
    grad_output: FloatArray  # what reached h_t from outside the layer's recurrence


def backward_layers(cell: str, params: Params, caches: Sequence[Cache], grad_top: FloatArray,
                    truncation: int | None = None) -> list[LayerGrads]:
    """Backward through every layer, top first, from d loss / d h^{top} given at each step.

    grad_top: (T, ..., B, H); extra axes after time are carried through (see ``engine.cells``).
    caches: the L per-layer caches of the cells' ``forward``.
    Returns, per layer from the bottom, its ``LayerGrads``.
    """
    module = CELL_MODULES[cell]
    num_layers = len(caches)
    results: list[LayerGrads | None] = [None] * num_layers
    grad_output = grad_top
    for layer in range(num_layers - 1, -1, -1):
        grad_x_proj, grad_h_proj, grad_hidden, grad_cell = module.backward(
            grad_output, caches[layer], params[f"weight_hh_l{layer}"], truncation)
        results[layer] = LayerGrads(grad_x_proj, grad_h_proj, grad_hidden, grad_cell,
                                    grad_output)
        if layer:
            grad_output = affine(grad_x_proj, params[f"weight_ih_l{layer}"])  # to the layer below
    return [r for r in results if r is not None]  # all filled in by the loop above


def affine(x: FloatArray, weight: FloatArray, bias: FloatArray | None = None) -> FloatArray:
    """x @ weight (+ bias) over the last axis, as one 2-D matrix product: on a (T, B, D) array
    NumPy's @ would call BLAS once per step (measured 2x slower at B = 1).
    x: (..., D); weight: (D, K); bias: (K,). Returns (..., K)."""
    out = (x.reshape(-1, x.shape[-1]) @ weight).reshape(*x.shape[:-1], weight.shape[-1])
    if bias is not None:
        out += bias
    return out


def _cross_entropy(logits: FloatArray, targets: AnyArray) -> tuple[FloatArray, FloatArray]:
    """logits: (T, B, K), targets: (T, B). Returns step_loss (T,) and d loss / d logits."""
    has_target = targets >= 0  # (T, B)
    safe_targets = np.where(has_target, targets, 0)[..., None]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    log_prob = shifted - log_norm  # (T, B, K) log softmax, stable
    picked = np.take_along_axis(log_prob, safe_targets, axis=-1)[..., 0]  # (T, B)
    step_loss = -np.where(has_target, picked, 0.0).sum(axis=1)  # (T,)
    grad_logits = np.exp(log_prob)  # softmax
    np.put_along_axis(grad_logits, safe_targets,
                      np.take_along_axis(grad_logits, safe_targets, axis=-1) - 1.0, axis=-1)
    grad_logits *= has_target[..., None]
    return step_loss, grad_logits


def _squared_error(outputs: FloatArray, targets: AnyArray) -> tuple[FloatArray, FloatArray]:
    """outputs, targets: (T, B, K); a NaN target row means no loss there.
    Returns step_loss (T,) and d loss / d outputs."""
    has_target = ~np.isnan(targets).any(axis=-1, keepdims=True)  # (T, B, 1)
    error = np.where(has_target, outputs - np.where(has_target, targets, 0.0), 0.0)
    return (error**2).sum(axis=(1, 2)), 2.0 * error


def target_mask(trace: Trace) -> BoolArray:
    """(T, B) True where the step carries a loss term."""
    if trace.loss_kind == "mse":
        return np.asarray(~np.isnan(trace.targets).any(axis=-1))
    return np.asarray(trace.targets >= 0)


def _initial_state(cell: str, h0: InitialState, num_layers: int, batch: int,
                   hidden_size: int) -> tuple[FloatArray, FloatArray | None]:
    shape = (num_layers, batch, hidden_size)
    if h0 is None:
        return np.zeros(shape), (np.zeros(shape) if cell == "lstm" else None)
    if cell == "lstm":
        if not (isinstance(h0, tuple | list) and len(h0) == 2):
            raise ValueError("lstm h0 must be None or a pair (h0, c0), each (L, B, H)")
        h, c = np.asarray(h0[0], dtype=np.float64), np.asarray(h0[1], dtype=np.float64)
    else:
        h, c = np.asarray(h0, dtype=np.float64), None
    for name, array in (("h0", h), ("c0", c)):
        if array is not None and array.shape != shape:
            raise ValueError(f"{name} must have shape (L, B, H) = {shape}, got {array.shape}")
    return h, c


def _first_nonfinite_step(values: FloatArray) -> int | None:
    """values: (L, T, B, H) -> first t with a non-finite entry in any layer, or None."""
    bad = ~np.isfinite(values).all(axis=(0, 2, 3))  # (T,)
    return int(np.argmax(bad)) if bad.any() else None


def _last_nonfinite_step(values: FloatArray) -> int | None:
    bad = np.asarray(~np.isfinite(values).all(axis=(0, 2, 3)))  # (T,)
    return int(len(bad) - 1 - np.argmax(bad[::-1])) if bad.any() else None
