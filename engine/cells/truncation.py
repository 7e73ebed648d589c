"""Where truncated BPTT cuts the gradient."""

from __future__ import annotations


def cuts_gradient(t: int, truncation: int | None) -> bool:
    """True when no gradient may flow from step t back to step t - 1: at t = 0, and with
    truncated BPTT at every chunk start t = k, 2k, ... (PyTorch's ``h.detach()`` there)."""
    return t == 0 or (truncation is not None and t % truncation == 0)
