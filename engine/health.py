"""The numbers of a trained network's health report: what its recurrent weights and its gates say
about how far back its gradient can reach.

- ``weight_spectra``: per layer and gate block of W_hh, sigma_max (the largest singular value,
  the most one step can stretch a vector) and the spectral radius |lambda|_max (the growth rate of
  many steps of the same linear map).
- ``gate_saturation``: on a given input, how often each sigmoid gate sits below 0.05 or above
  0.95, where its derivative sigma' = s (1 - s) is under 0.05 and it passes almost no gradient
  to its own pre-activation.
- ``carry_bias``: lstm's forget-gate bias b_if + b_hf (gru: the update gate z's), the gate whose
  value at rest decides how much of the state survives a step.
- ``memory_horizon``: the per-step factor rho by which ||d h_{T-1} / d h_t|| shrinks (< 1) or grows
  (> 1), fitted on log10 of those norms against the distance T-1-t, and the distance at which the
  fitted line falls below ``HORIZON_LEVEL`` (1e-3): the number of steps an error at the end still
  reaches back with a thousandth of its size.

Letters in shapes: T steps, B batch, D inputs, H hidden units, L layers, G gate blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import FloatArray, IntArray, Params
from .bptt import Trace, run
from .diagnostics import jacobian_norms
from .params import CARRY_GATE, GATE_NAMES, GATES, infer_sizes
from .theory import recurrent_spectra

SATURATION_LOW, SATURATION_HIGH = 0.05, 0.95
HORIZON_LEVEL = 1e-3
SIGMOID_GATES = {"rnn": (), "lstm": ("i", "f", "o"), "gru": ("r", "z")}
DEFAULT_OUTPUT_SIZE = 8  # the classes of the seeded read-out a model without a head gets
READOUT_SEED = 0  # that read-out is the same for every run of every model of a size


def with_readout(params: Params, output_size: int = DEFAULT_OUTPUT_SIZE,
                 seed: int = READOUT_SEED) -> Params:
    """``params`` with a linear read-out: its own ``head.*`` if it has one, else a fixed seeded
    one, U(-1/sqrt(H), 1/sqrt(H)) as ``nn.Linear`` (the Jacobians do not depend on it; the
    loss and ||d loss / d h_t|| do)."""
    if "head.weight" in params:
        return params
    hidden = params["weight_hh_l0"].shape[1]
    rng = np.random.default_rng([seed, hidden, output_size])
    bound = 1.0 / np.sqrt(hidden)
    return {**params, "head.weight": rng.uniform(-bound, bound, (output_size, hidden)),
            "head.bias": rng.uniform(-bound, bound, output_size)}


@dataclass(frozen=True)
class GateSpectrum:
    layer: int
    gate: str
    sigma_max: float  # largest singular value of the H x H block
    spectral_radius: float  # largest |eigenvalue|


def weight_spectra(cell: str, params: Params) -> list[GateSpectrum]:
    """sigma_max and spectral radius of every H x H gate block of every layer's W_hh, in
    PyTorch's gate order; nan for a block holding a non-finite entry."""
    params = with_readout(params)
    _, hidden, _, num_layers = infer_sizes(cell, params)
    finite = all(np.isfinite(params[f"weight_hh_l{k}"]).all() for k in range(num_layers))
    if not finite:  # LAPACK refuses non-finite matrices: answer block by block
        out = []
        for layer in range(num_layers):
            blocks = params[f"weight_hh_l{layer}"].reshape(-1, hidden, hidden)  # (G, H, H)
            for name, block in zip(GATE_NAMES[cell], blocks, strict=True):
                if np.isfinite(block).all():
                    out.append(GateSpectrum(layer, name, float(np.linalg.norm(block, 2)),
                                            float(np.max(np.abs(np.linalg.eigvals(block))))))
                else:
                    out.append(GateSpectrum(layer, name, float("nan"), float("nan")))
        return out
    return [GateSpectrum(layer, name, float(spectrum.singular_values[0]),
                         float(np.abs(spectrum.eigenvalues[0])))
            for layer, blocks in enumerate(recurrent_spectra(cell, params))
            for name, spectrum in blocks.items()]


@dataclass(frozen=True)
class GateSaturation:
    layer: int
    gate: str
    low: float  # fraction of (t, b, unit) with the gate below SATURATION_LOW
    high: float  # ... above SATURATION_HIGH
    mean: float  # the gate's mean value
    nonfinite: float = 0.0  # fraction of (t, b, unit) that is inf or nan (low, high and mean
    #                         are over the finite rest; nan when nothing is finite)


def gate_saturation(trace: Trace) -> list[GateSaturation]:
    """How often each sigmoid gate of each layer sits saturated on the trace's inputs. For rnn,
    the hidden state itself under "h": the share of |h| above 0.95 counts as "high" (tanh and
    sigmoid are flat there), with "low" 0."""
    out = []
    for layer in range(trace.num_layers):
        if trace.cell_type == "rnn":
            values = np.abs(trace.hidden[layer])  # (T, B, H)
            finite = values[np.isfinite(values)]
            out.append(GateSaturation(layer, "h", 0.0 if finite.size else float("nan"),
                                      _share(finite > SATURATION_HIGH), _mean(finite),
                                      1.0 - finite.size / max(1, values.size)))
            continue
        for gate in SIGMOID_GATES[trace.cell_type]:
            values = trace.gates[gate][layer]  # (T, B, H)
            finite = values[np.isfinite(values)]
            out.append(GateSaturation(layer, gate, _share(finite < SATURATION_LOW),
                                      _share(finite > SATURATION_HIGH), _mean(finite),
                                      1.0 - finite.size / max(1, values.size)))
    return out


def _share(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if mask.size else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


@dataclass(frozen=True)
class CarryBias:
    layer: int
    gate: str  # "f" (lstm) or "z" (gru)
    mean: float  # of b_ih + b_hh over the H units
    low: float  # smallest unit's
    high: float  # largest unit's
    gate_at_rest: float  # sigmoid(mean): the gate's value with no input and no state


def carry_bias(cell: str, params: Params) -> list[CarryBias]:
    """The carry gate's total bias per layer (lstm f, gru z); [] for rnn."""
    gate = CARRY_GATE.get(cell)
    if gate is None:
        return []
    hidden = params["weight_hh_l0"].shape[1]
    index = GATE_NAMES[cell].index(gate)
    out = []
    for layer in range(sum(1 for key in params if key.startswith("weight_hh_l"))):
        total = (params[f"bias_ih_l{layer}"] + params[f"bias_hh_l{layer}"])[
            index * hidden:(index + 1) * hidden]  # (H,)
        mean = float(np.mean(total))
        with np.errstate(over="ignore", invalid="ignore"):
            at_rest = float(1.0 / (1.0 + np.exp(-mean)))
        out.append(CarryBias(layer, gate, mean, float(np.min(total)), float(np.max(total)),
                             at_rest))
    return out


@dataclass(frozen=True)
class Horizon:
    layer: int
    steps: IntArray  # (n,) the steps t of the Jacobian products
    norms: FloatArray  # (n,) ||d h_{T-1} / d h_t||_2 along this layer
    factor: float  # per-step factor rho (nan when nothing could be fitted)
    horizon: float  # distance at which the fit falls below HORIZON_LEVEL; inf if it never does
    observed: int | None  # the smallest distance actually measured below HORIZON_LEVEL, if any


def memory_horizon(trace: Trace, *, batch_index: int = 0) -> list[Horizon]:
    """Per layer, the per-step factor of ||d h_{T-1} / d h_t|| and the horizon it implies.

    The fit is least squares of log10 norm against distance d = T-1-t over the finite, nonzero
    norms at d >= 1 (d = 0 is the identity). Exact zeros (a gradient that died completely) mark
    the horizon as observed there."""
    jac = jacobian_norms(trace, batch_index=batch_index)
    out = []
    distance = (trace.seq_len - 1 - jac.steps).astype(float)  # (n,)
    for layer in range(trace.num_layers):
        norms = jac.norms[layer]
        below = distance[(norms < HORIZON_LEVEL) & np.isfinite(norms)]
        observed = int(below.min()) if below.size else None
        usable = (distance >= 1) & np.isfinite(norms) & (norms > 0)
        factor, horizon = float("nan"), float("nan")
        if usable.sum() >= 2:
            slope, intercept = np.polyfit(distance[usable], np.log10(norms[usable]), 1)
            factor = float(10.0 ** slope)
            horizon = (float((np.log10(HORIZON_LEVEL) - intercept) / slope) if slope < 0
                       else float("inf"))
            horizon = max(horizon, 1.0) if np.isfinite(horizon) else horizon
        elif usable.sum() == 1:
            d, value = distance[usable][0], norms[usable][0]
            factor = float(value ** (1.0 / d))
            horizon = (float(d * np.log(HORIZON_LEVEL) / np.log(value)) if value < 1
                       else float("inf"))
        elif observed is not None:
            factor, horizon = 0.0, float(observed)
        out.append(Horizon(layer, jac.steps, norms, factor, horizon, observed))
    return out


def report_run(cell: str, params: Params, inputs: FloatArray, *,
               nonlinearity: str = "tanh") -> Trace:
    """One forward and backward pass of the model on ``inputs`` (T, B, D), with a loss at the last
    step (class 0, through its head or the seeded read-out): what the report's gate statistics and
    Jacobians are read from (neither depends on the loss)."""
    params = with_readout(params)
    inputs = np.asarray(inputs, dtype=np.float64)
    targets = np.full(inputs.shape[:2], -1, dtype=np.int64)  # (T, B)
    targets[-1] = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return run(cell, params, inputs, targets, nonlinearity=nonlinearity)


def work(cell: str, num_layers: int, hidden_size: int, seq_len: int, batch_size: int) -> int:
    """Multiply-adds of the recurrence, T * L * B * G * H^2 (what the app budgets)."""
    return seq_len * num_layers * batch_size * GATES[cell] * hidden_size**2
