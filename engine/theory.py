"""The theory that explains the pictures: spectra of the recurrent weights and the bound of
Pascanu, Mikolov & Bengio (2013, "On the difficulty of training recurrent neural networks",
ICML, section 3.1 and equation 6).

For an rnn h_t = phi(W_hh h_{t-1} + ...), the Jacobian dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh has
norm at most gamma * sigma_max(W_hh), gamma = sup |phi'| (1 for tanh and relu, 1/4 for sigmoid).
So along k steps ||dh_{t+k}/dh_t|| <= (gamma * sigma_max)^k: if gamma * sigma_max < 1 the
gradient *must* vanish geometrically; exploding is only *possible* when it is > 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._types import FloatArray
from .activations import DERIVATIVE_BOUND
from .cells import cuts_gradient
from .params import GATE_NAMES, infer_sizes

LN10 = np.log(10)


class Spectrum(NamedTuple):
    """Eigenvalues and singular values of one H x H gate block of ``weight_hh``."""

    eigenvalues: npt.NDArray[np.complex128]  # (H,) complex, sorted by decreasing modulus
    singular_values: FloatArray  # (H,) sorted decreasing


def recurrent_spectra(cell: str, params: dict[str, FloatArray]) -> list[dict[str, Spectrum]]:
    """Spectra of the recurrent weights, per layer and gate block.

    Args:
        cell: "rnn" | "lstm" | "gru".
        params: as ``engine.init_params`` (PyTorch state_dict keys); ``weight_hh_l{l}`` is
            (G*H, H) with the gate blocks stacked in PyTorch's order.
    Returns:
        A list of L dicts {gate name: Spectrum of that gate's H x H block}: rnn has one block
        named "h"; lstm i, f, g, o; gru r, z, n (the gate orders of ``torch.nn.LSTM`` / ``GRU``).
    Raises:
        ValueError: unknown cell, or params whose shapes do not fit it.
    """
    _, H, _, num_layers = infer_sizes(cell, params)
    spectra = []
    for layer in range(num_layers):
        blocks = params[f"weight_hh_l{layer}"].reshape(-1, H, H)  # (G, H, H)
        unsorted = np.asarray(np.linalg.eigvals(blocks), dtype=np.complex128)  # (G, H)
        order = np.argsort(-np.abs(unsorted), axis=1)
        eigenvalues = np.take_along_axis(unsorted, order, axis=1)
        singular_values = np.linalg.svd(blocks, compute_uv=False)  # (G, H), decreasing
        spectra.append({name: Spectrum(eigenvalues[k], singular_values[k])
                        for k, name in enumerate(GATE_NAMES[cell])})
    return spectra


def derivative_bound(nonlinearity: str) -> float:
    """gamma = sup_x |phi'(x)|: 1 for tanh, 1/4 for sigmoid, 1 for relu (unitless).

    Raises:
        ValueError: ``nonlinearity`` is not "tanh", "sigmoid" or "relu".
    """
    try:
        return DERIVATIVE_BOUND[nonlinearity]
    except KeyError:
        raise ValueError(f"nonlinearity must be one of {sorted(DERIVATIVE_BOUND)}, "
                         f"got {nonlinearity!r}") from None


def pascanu_log10_bound(direct_grad_norms: npt.ArrayLike, rate: float,
                        truncation: int | None = None) -> FloatArray:
    """log10 of the Pascanu, Mikolov & Bengio (2013) bound on ||d loss / d h_t|| of one layer.

    Each loss term L_s reaches h_t through s - t recurrent Jacobians, each of norm at most
    ``rate`` = gamma * sigma_max(W_hh) (see ``derivative_bound``), so ||d loss / d h_t|| <= b_t
    with the backward recursion

        b_{T-1} = g_{T-1},    b_t = g_t + rate * b_{t+1},

    g_t being the norm of the gradient that reaches h_t directly (from the head, or from the
    layer above: ``Trace.grad_output``). With truncation k the gradient does not cross a chunk
    boundary, so the recursion restarts (b_t = g_t) wherever t + 1 is a multiple of k. For one
    error at the last step (g = 0 except g_{T-1}) this is g_{T-1} * rate^(T-1-t).

    Computed in log space, so a bound of 10^900 is still a number to draw; -inf where the bound
    is 0, nan where a g_t is nan.

    Args:
        direct_grad_norms: (T,) g_t >= 0, e.g. ``norm(trace.grad_output[-1], axis=(1, 2))``.
        rate: gamma * sigma_max >= 0, the largest norm one recurrent Jacobian can have.
        truncation: None for full BPTT, or the chunk length k >= 1 (as ``engine.run``).
    Returns:
        (T,) log10 b_t (b in the units of g: a gradient norm).
    Raises:
        ValueError: ``direct_grad_norms`` not one-dimensional or negative somewhere; ``rate``
            negative or nan; ``truncation`` neither None nor an integer >= 1.
    """
    norms = np.asarray(direct_grad_norms, dtype=np.float64)
    if norms.ndim != 1:
        raise ValueError(f"direct_grad_norms must be one-dimensional (T,), got shape "
                         f"{norms.shape}")
    if np.any(norms < 0):
        raise ValueError("direct_grad_norms must be >= 0 (they are norms)")
    if not rate >= 0:  # also rejects nan
        raise ValueError(f"rate must be a number >= 0 (gamma * sigma_max), got {rate!r}")
    _check_truncation(truncation)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rate = np.log10(rate)
        log_direct = np.log10(norms)  # (T,)
    bound = np.empty_like(log_direct)
    running = -np.inf  # log10 b_{t+1}; -inf: nothing beyond the last step
    with np.errstate(invalid="ignore"):
        for t in range(len(bound) - 1, -1, -1):
            if t + 1 < len(bound) and cuts_gradient(t + 1, truncation):
                running = -np.inf  # nothing flows back across a chunk boundary
            # log10(g_t + rate * b_{t+1}), by logaddexp in natural-log units
            running = np.logaddexp(log_direct[t] * LN10, (running + log_rate) * LN10) / LN10
            bound[t] = running
    return bound


def pascanu_bound(direct_grad_norms: npt.ArrayLike, rate: float,
                  truncation: int | None = None) -> FloatArray:
    """The bound b_t of ``pascanu_log10_bound`` itself, (T,); inf where it exceeds float64.

    Raises:
        ValueError: as ``pascanu_log10_bound``.
    """
    log_bound = pascanu_log10_bound(direct_grad_norms, rate, truncation)
    with np.errstate(over="ignore"):
        return np.power(10.0, log_bound)


def _check_truncation(truncation: int | None) -> None:
    if truncation is not None and (isinstance(truncation, bool) or int(truncation) != truncation
                                   or truncation < 1):
        raise ValueError(f"truncation must be None or an integer >= 1, got {truncation!r}")
