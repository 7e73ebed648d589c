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
from .params import CELLS, GATE_NAMES, INITS, init_params

__all__ = [
    "ACTIVATIONS", "CELLS", "DERIVATIVE_BOUND", "GATE_NAMES", "INITS", "NONLINEARITIES", "Trace",
    "activation", "activation_grad", "compose", "init_params", "run",
]
