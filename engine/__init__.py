"""Gradient Flow Lab's engine: exact BPTT for rnn, lstm and gru in pure NumPy (float64).

Public API (see README "Engine API"): ``init_params``, ``run``, ``Trace``, clipping and the
measures that compare gradients, the diagnostics and theory functions, the activations and the
task facts re-exported below. Nothing here imports anything but NumPy and the standard library.

Letters in shapes, everywhere: T steps, B batch, D inputs, H hidden units, K classes, L layers,
G gate blocks (1 rnn, 4 lstm, 3 gru), N items of a list of steps.
"""

from .activations import (
    ACTIVATIONS,
    DERIVATIVE_BOUND,
    NONLINEARITIES,
    activation,
    activation_grad,
    compose,
    grad_maxima,
    sigmoid,
    sigmoid_fixed_point,
)
from .bptt import Trace, run
from .clip import clip_grad_norm, clip_grad_value, cosine, global_norm, relative_difference
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
    log_carry_gain,
    log_mean_exp,
    loss_reach,
    norm,
    reach_band,
    retention,
    weight_grad_contributions,
)
from .io import LoadedModel, ModelFileError, load_inputs, load_model, load_state_dict
from .lyapunov import (
    LyapunovSpectrum,
    States,
    forward_states,
    jacobian_product_singular_values,
    largest_exponent_grid,
    lyapunov_spectrum,
    state_size,
    step_jacobians,
)
from .params import CARRY_GATE, CELLS, GATE_NAMES, INITS, init_params
from .tasks import TASKS, chance_level, sequence_length, task_shape
from .theory import (
    Spectrum,
    derivative_bound,
    pascanu_bound,
    pascanu_log10_bound,
    recurrent_spectra,
)

__all__ = [
    "ACTIVATIONS", "CARRY_GATE", "CELLS", "DERIVATIVE_BOUND", "GATE_NAMES", "INITS", "LOSS_AT",
    "NONLINEARITIES", "TASKS",
    "JacobianNorms", "LoadedModel", "LossReach", "LyapunovSpectrum", "ModelFileError", "Spectrum",
    "States", "Trace",
    "forward_states", "jacobian_product_singular_values", "largest_exponent_grid",
    "lyapunov_spectrum", "state_size", "step_jacobians",
    "activation", "activation_grad", "carry_gain", "carry_path_grad_norms", "cell_grad_norms",
    "chance_level", "clip_grad_norm", "clip_grad_value", "compose", "contribution_norms",
    "cosine", "derivative_bound", "global_norm", "grad_maxima", "grad_norms", "init_params",
    "jacobian_norms", "load_inputs", "load_model", "load_state_dict",
    "log_carry_gain", "log_mean_exp", "loss_reach", "norm", "pascanu_bound",
    "pascanu_log10_bound", "random_batch", "reach_band", "recurrent_spectra",
    "relative_difference", "retention", "run", "sequence_length", "sigmoid",
    "sigmoid_fixed_point", "task_shape", "weight_grad_contributions",
]
