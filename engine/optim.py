"""Optimisers as pure functions: ``new_params, new_state = step(params, grads, state, lr, ...)``.
The formulas and defaults are PyTorch's (``torch.optim.SGD``, with and without momentum, and
``torch.optim.Adam``), so a run can be compared with PyTorch update for update."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import Grads, Params

OPTIMIZERS = ("sgd", "momentum", "adam")


OptimizerState = dict[str, Any]  # sgd {}; momentum {"velocity"}; adam {"step", "m", "v"}


def init_state(name: str, params: Params) -> OptimizerState:
    """The optimiser's starting state (zeros, like PyTorch's lazily created buffers).

    Raises:
        ValueError: ``name`` is not "sgd", "momentum" or "adam".
    """
    if name == "sgd":
        return {}
    if name == "momentum":
        return {"velocity": {k: np.zeros_like(v) for k, v in params.items()}}
    if name == "adam":
        return {"step": 0, "m": {k: np.zeros_like(v) for k, v in params.items()},
                "v": {k: np.zeros_like(v) for k, v in params.items()}}
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def step(name: str, params: Params, grads: Grads, state: OptimizerState, lr: float, *,
         momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
         ) -> tuple[Params, OptimizerState]:
    """One update, as ``torch.optim.SGD`` (momentum: v = mu v + g; p -= lr v) or
    ``torch.optim.Adam`` (Kingma & Ba 2015, with bias correction). The inputs are left untouched.

    Returns:
        (new params, new state).
    Raises:
        ValueError: unknown ``name``, or ``lr`` not >= 0.
    """
    if not lr >= 0:
        raise ValueError(f"lr must be a number >= 0, got {lr!r}")
    if name == "sgd":
        return {k: params[k] - lr * grads[k] for k in params}, state
    if name == "momentum":
        # PyTorch: v = mu v + g; p = p - lr v
        velocity = {k: momentum * state["velocity"][k] + grads[k] for k in params}
        return {k: params[k] - lr * velocity[k] for k in params}, {"velocity": velocity}
    if name == "adam":
        beta1, beta2 = betas
        t = state["step"] + 1
        m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
        v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
        correction1, correction2 = 1 - beta1**t, 1 - beta2**t
        new = {k: params[k] - lr * (m[k] / correction1) / (np.sqrt(v[k] / correction2) + eps)
               for k in params}
        return new, {"step": t, "m": m, "v": v}
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
