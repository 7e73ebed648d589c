"""Gradient clipping, the standard cure for exploding gradients (Pascanu, Mikolov & Bengio 2013,
section 3.2), in the two forms PyTorch offers, and the measures that compare two gradients.

Global-norm clipping rescales every gradient by one factor, so the update keeps its direction;
clipping by value clamps each element on its own, which can turn the update.

A gradient here is a dict {parameter name: array}, with the keys and shapes of the parameters
(see ``engine.init_params``); the measures treat it as one long vector.
"""

from __future__ import annotations

import numpy as np

from ._types import Grads


def global_norm(grads: Grads) -> float:
    """The 2-norm of every entry of every gradient seen as one vector, without overflowing or
    underflowing for finite entries (entries of 1e200 give about 1e200, not inf); inf if any
    entry is inf, nan if any is nan. Scaled by the largest magnitude before squaring."""
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in grads.values()]
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


def _plain_norm(grads: Grads) -> float:
    """sqrt of the sum of squares, as PyTorch's clip_grad_norm_ computes it in float64: inf once
    a square overflows (entries above about 1e154), which clip_grad_norm must reproduce."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))


def clip_grad_norm(grads: Grads, max_norm: float) -> tuple[Grads, float]:
    """As ``torch.nn.utils.clip_grad_norm_(parameters, max_norm)`` (2-norm), without mutating.

    Returns:
        (clipped, total_norm): every gradient times min(1, max_norm / (total_norm + 1e-6)), and
        the global norm before clipping. As in PyTorch, a nan total norm makes every clipped
        gradient nan, and an inf one zeroes the finite entries.
    Raises:
        ValueError: ``max_norm`` is not > 0.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    total_norm = _plain_norm(grads)  # PyTorch's value, inf for entries above ~1e154
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        coef = np.minimum(max_norm / (total_norm + 1e-6), 1.0)
        clipped = {key: g * coef for key, g in grads.items()}
    return clipped, total_norm


def clip_grad_value(grads: Grads, clip_value: float) -> Grads:
    """As ``torch.nn.utils.clip_grad_value_``: each entry clamped to [-clip_value, clip_value].

    Raises:
        ValueError: ``clip_value`` is not > 0.
    """
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value!r}")
    return {key: np.clip(g, -clip_value, clip_value) for key, g in grads.items()}


def cosine(a: Grads, b: Grads) -> float:
    """Cosine of the angle between two gradients seen as one long vector each: 1 for global-norm
    clipping, possibly less for clipping by value.

    Each gradient is first divided by its largest entry (which leaves the cosine unchanged), so
    gradients of 1e200 still give a number. nan if either gradient is zero or not finite.

    Raises:
        ValueError: ``a`` and ``b`` do not have the same keys.
    """
    _check_same_keys(a, b)
    a, b = _unit_scaled(a, a), _unit_scaled(b, b)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        dot = sum(float(np.sum(a[k] * b[k])) for k in a)
        return dot / (global_norm(a) * global_norm(b))


def relative_difference(approx: Grads, exact: Grads) -> float:
    """||approx - exact|| / ||exact|| over every parameter gradient at once (unitless), e.g.
    truncated BPTT's gradient against the full one.

    Both are divided by the largest entry of ``exact`` first, so gradients of 1e200 do not
    overflow the squares.

    Returns:
        0 when the two are equal, nan when only ``exact`` is 0.
    Raises:
        ValueError: ``approx`` and ``exact`` do not have the same keys.
    """
    _check_same_keys(approx, exact)
    unit = _largest_entry(exact)
    with np.errstate(over="ignore", invalid="ignore"):
        difference = global_norm({key: (approx[key] - exact[key]) / unit for key in exact})
        scale = global_norm({key: value / unit for key, value in exact.items()})
    if difference == 0:
        return 0.0
    return difference / scale if scale > 0 else float("nan")


def _largest_entry(grads: Grads) -> float:
    """max |entry| over every gradient, or 1 when that is 0 or not finite (nothing to scale)."""
    largest = max((float(np.max(np.abs(g), initial=0.0)) for g in grads.values()), default=0.0)
    return largest if np.isfinite(largest) and largest > 0 else 1.0


def _unit_scaled(grads: Grads, by: Grads) -> Grads:
    scale = _largest_entry(by)
    return {key: value / scale for key, value in grads.items()}


def _check_same_keys(a: Grads, b: Grads) -> None:
    if a.keys() != b.keys():
        raise ValueError(f"the two gradients must have the same keys, got {sorted(a)} and "
                         f"{sorted(b)}")
