"""The theory that explains the pictures: spectra of the recurrent weights and the bound of
Pascanu, Mikolov & Bengio (2013, "On the difficulty of training recurrent neural networks").

For an rnn h_t = phi(W_hh h_{t-1} + ...), the Jacobian dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh has
norm at most gamma * sigma_max(W_hh), gamma = sup |phi'| (1 for tanh and relu, 1/4 for sigmoid).
So along k steps ||dh_{t+k}/dh_t|| <= (gamma * sigma_max)^k: if gamma * sigma_max < 1 the
gradient *must* vanish geometrically; exploding is only *possible* when it is > 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import DERIVATIVE_BOUND
from .params import GATE_NAMES, infer_sizes


class Spectrum(NamedTuple):
    eigenvalues: np.ndarray  # (H,) complex, sorted by decreasing modulus
    singular_values: np.ndarray  # (H,) sorted decreasing


def recurrent_spectra(cell: str, params: dict[str, np.ndarray]) -> list[dict[str, Spectrum]]:
    """Per layer, {gate name: Spectrum of that gate's H x H block of weight_hh}.
    rnn has one block named "h"; lstm i, f, g, o; gru r, z, n."""
    _, H, _, num_layers = infer_sizes(cell, params)
    spectra = []
    for layer in range(num_layers):
        blocks = params[f"weight_hh_l{layer}"].reshape(-1, H, H)  # (G, H, H)
        eigenvalues = np.linalg.eigvals(blocks)  # (G, H)
        order = np.argsort(-np.abs(eigenvalues), axis=1)
        eigenvalues = np.take_along_axis(eigenvalues, order, axis=1)
        singular_values = np.linalg.svd(blocks, compute_uv=False)  # (G, H), decreasing
        spectra.append({name: Spectrum(eigenvalues[k], singular_values[k])
                        for k, name in enumerate(GATE_NAMES[cell])})
    return spectra


def derivative_bound(nonlinearity: str) -> float:
    """gamma = sup_x |phi'(x)|: 1 for tanh, 1/4 for sigmoid, 1 for relu."""
    try:
        return DERIVATIVE_BOUND[nonlinearity]
    except KeyError:
        raise ValueError(f"nonlinearity must be one of {sorted(DERIVATIVE_BOUND)}, "
                         f"got {nonlinearity!r}") from None


def pascanu_log10_bound(sigma_max: float, seq_len: int, gamma: float) -> np.ndarray:
    """log10 of the bound (gamma * sigma_max)^(T-1-t) on ||dh_{T-1} / dh_t||, for t = 0..T-1.

    In log10 so it never overflows (a bound of 10^400 is still a number to draw);
    -inf where sigma_max is 0 (except at t = T-1, where the bound is 1).
    Returns (T,).
    """
    steps_back = np.arange(seq_len - 1, -1, -1, dtype=float)  # T-1-t
    with np.errstate(divide="ignore"):
        log_rate = np.log10(gamma * sigma_max)
    with np.errstate(invalid="ignore"):
        bound = steps_back * log_rate
    bound[-1] = 0.0  # zero steps back: the identity, whatever the rate
    return bound


def pascanu_bound(sigma_max: float, seq_len: int, gamma: float) -> np.ndarray:
    """(gamma * sigma_max)^(T-1-t) for t = 0..T-1; inf where it exceeds float64. Returns (T,)."""
    with np.errstate(over="ignore"):
        return 10.0 ** pascanu_log10_bound(sigma_max, seq_len, gamma)
