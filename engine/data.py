"""Random inputs and targets for the gradient-flow pictures (seeded, so a shared URL reproduces)."""

from __future__ import annotations

import numpy as np

from ._types import FloatArray, IntArray

LOSS_AT = ("last", "all")


def random_batch(seq_len: int, batch_size: int, input_size: int, output_size: int, *,
                 input_scale: float = 1.0, loss_at: str = "last",
                 seed: int | np.random.Generator = 0) -> tuple[FloatArray, IntArray]:
    """Gaussian inputs and uniformly random class targets.

    input_scale: standard deviation of the inputs (0 gives all-zero inputs).
    loss_at: "last" puts a target at the last step only (-1 elsewhere, no loss), which shows how
        far one error reaches back; "all" puts one at every step.
    seed: an int or a ``np.random.Generator``.
    Returns inputs (T, B, D) float64 and targets (T, B) int64 in [0, K), -1 for no loss.

    Raises:
        ValueError: unknown ``loss_at``, a size that is not an integer >= 1, or a negative or
            non-finite ``input_scale``.
    """
    if loss_at not in LOSS_AT:
        raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size),
                        ("input_size", input_size), ("output_size", output_size)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (np.isfinite(input_scale) and input_scale >= 0):
        raise ValueError(f"input_scale must be a finite number >= 0, got {input_scale!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    inputs = input_scale * rng.standard_normal((seq_len, batch_size, input_size))
    targets = rng.integers(0, output_size, (seq_len, batch_size))
    if loss_at == "last":
        targets[:-1] = -1
    return inputs, targets
