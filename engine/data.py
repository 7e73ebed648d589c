"""Random inputs and targets for the gradient-flow pictures (seeded, so a shared URL reproduces)."""

from __future__ import annotations

import numpy as np

LOSS_AT = ("last", "all")


def random_batch(seq_len, batch_size, input_size, output_size, *, input_scale=1.0,
                 loss_at="last", seed=0):
    """Gaussian inputs and uniformly random class targets.

    input_scale: standard deviation of the inputs (0 gives all-zero inputs).
    loss_at: "last" puts a target at the last step only (-1 elsewhere, no loss), which shows how
        far one error reaches back; "all" puts one at every step.
    Returns inputs (T, B, D) float64 and targets (T, B) int64.
    """
    if loss_at not in LOSS_AT:
        raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
    rng = np.random.default_rng(seed)
    inputs = input_scale * rng.standard_normal((seq_len, batch_size, input_size))
    targets = rng.integers(0, output_size, (seq_len, batch_size))
    if loss_at == "last":
        targets[:-1] = -1
    return inputs, targets
