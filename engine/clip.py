"""Gradient clipping, the standard cure for exploding gradients, in its two common forms.

Global-norm clipping rescales every gradient by one factor, so the update keeps its direction;
clipping by value clamps each element on its own, which can turn the update.
"""

from __future__ import annotations

import numpy as np


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """The 2-norm of every entry of every gradient seen as one vector, without overflowing or
    underflowing for finite entries (entries of 1e200 give about 1e200, not inf); inf if any
    entry is inf, nan if any is nan. Scaled by the largest magnitude before squaring."""
    arrays = [np.asarray(g, dtype=float).ravel() for g in grads.values()]
    if not arrays or not any(a.size for a in arrays):
        return 0.0
    with np.errstate(invalid="ignore"):
        scale = max(float(np.max(np.abs(a))) for a in arrays if a.size)
    if any(np.isnan(a).any() for a in arrays):
        return float("nan")
    if not np.isfinite(scale) or scale == 0.0:
        return scale  # inf, or 0
    with np.errstate(under="ignore"):
        total = sum(float(np.sum(np.square(a / scale))) for a in arrays)
    return scale * float(np.sqrt(total))


def _plain_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt of the sum of squares, as PyTorch's clip_grad_norm_ computes it in float64: inf once
    a square overflows (entries above about 1e154), which clip_grad_norm must reproduce."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float):
    """As ``torch.nn.utils.clip_grad_norm_(parameters, max_norm)`` (2-norm), without mutating.

    Returns (clipped, total_norm): every gradient times min(1, max_norm / (total_norm + 1e-6)),
    and the global norm before clipping. As in PyTorch, a nan total norm makes every clipped
    gradient nan, and an inf one zeroes the finite entries.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    total_norm = _plain_norm(grads)  # PyTorch's value, inf for entries above ~1e154
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        coef = np.minimum(max_norm / (total_norm + 1e-6), 1.0)
        clipped = {key: g * coef for key, g in grads.items()}
    return clipped, total_norm


def clip_grad_value(grads: dict[str, np.ndarray], clip_value: float) -> dict[str, np.ndarray]:
    """As ``torch.nn.utils.clip_grad_value_``: each entry clamped to [-clip_value, clip_value]."""
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value!r}")
    return {key: np.clip(g, -clip_value, clip_value) for key, g in grads.items()}


def cosine(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Cosine of the angle between two gradients seen as one long vector each (nan if either is
    zero): 1 for global-norm clipping, possibly less for clipping by value."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        dot = sum(float(np.sum(a[k] * b[k])) for k in a)
        return dot / (global_norm(a) * global_norm(b))
