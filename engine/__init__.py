"""Gradient Flow Lab's engine: exact BPTT for rnn, lstm and gru in pure NumPy (float64).

Public API (see README "Engine API"):
    init_params, run, Trace, clip_grad_norm, clip_grad_value, and the diagnostics and theory
    functions re-exported below. Nothing here imports anything but NumPy and the standard library.
"""

from .activations import (
    ACTIVATIONS,
    DERIVATIVE_BOUND,
    NONLINEARITIES,
    activation,
    activation_grad,
    compose,
)
from .bptt import Trace, run
from .clip import clip_grad_norm, clip_grad_value, cosine, global_norm
from .data import LOSS_AT, random_batch
from .diagnostics import (
    JacobianNorms,
    LossReach,
    carry_gain,
    carry_path_grad_norms,
    cell_grad_norms,
    contribution_norms,
    grad_norms,
    jacobian_norms,
    loss_reach,
    norm,
    weight_grad_contributions,
)
from .params import CELLS, GATE_NAMES, INITS, init_params
from .theory import (
    Spectrum,
    derivative_bound,
    pascanu_bound,
    pascanu_log10_bound,
    recurrent_spectra,
)

__all__ = [
    "ACTIVATIONS", "CELLS", "DERIVATIVE_BOUND", "GATE_NAMES", "INITS", "LOSS_AT", "NONLINEARITIES",
    "JacobianNorms", "LossReach", "Spectrum", "Trace",
    "activation", "activation_grad", "carry_gain", "carry_path_grad_norms", "cell_grad_norms",
    "clip_grad_norm", "clip_grad_value", "compose", "contribution_norms", "cosine",
    "derivative_bound", "global_norm", "grad_norms", "init_params", "jacobian_norms", "loss_reach",
    "norm", "pascanu_bound", "pascanu_log10_bound", "random_batch", "recurrent_spectra", "run",
    "weight_grad_contributions",
]
