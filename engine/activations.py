"""Element-wise nonlinearities, each a pair (value, derivative).

Every function here is numerically stable for |x| up to 1e4 and beyond: no overflow warnings, no
NaN. The derivatives are computed from ``x`` in closed forms that stay accurate where the textbook
``1 - tanh(x)**2`` or ``s * (1 - s)`` round to exactly 0 (saturated units), so the activations page
can show a derivative of 1e-300 instead of a flat zero.

The cells use the output-based derivatives (``1 - h**2``, ``s * (1 - s)``) instead, exactly as
PyTorch's autograd does, so that gradients match PyTorch bit for bit in spirit.
"""

from __future__ import annotations

import numpy as np

NONLINEARITIES = ("tanh", "sigmoid", "relu")

# sup |phi'(x)| over the real line: the gamma of Pascanu, Mikolov & Bengio (2013).
DERIVATIVE_BOUND = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), accurate in both tails (no exp overflow)."""
    # exp(-log(1 + exp(-x))); logaddexp never overflows and keeps tiny values like 1e-4000 -> 0.
    with np.errstate(invalid="ignore"):  # a nan input is a nan output, not a warning
        return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=float)))


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """sigmoid'(x) = sigmoid(x) * sigmoid(-x); its maximum is 0.25, at x = 0."""
    x = np.asarray(x, dtype=float)
    return sigmoid(x) * sigmoid(-x)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(np.asarray(x, dtype=float))


def tanh_grad(x: np.ndarray) -> np.ndarray:
    """tanh'(x) = 1 / cosh(x)^2 = 4 e^{-2|x|} / (1 + e^{-2|x|})^2; its maximum is 1, at x = 0."""
    # exp(-|x|) squared, not exp(-2|x|): 2|x| overflows (a warning) for |x| above ~9e307.
    half = np.exp(-np.abs(np.asarray(x, dtype=float)))  # in [0, 1]: cannot overflow
    e = half * half  # underflows quietly to 0 for |x| above ~373
    return 4.0 * e / (1.0 + e) ** 2


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=float), 0.0)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """1 where x > 0 and 0 elsewhere (PyTorch's convention at exactly 0)."""
    return (np.asarray(x, dtype=float) > 0).astype(float)


ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
}


def activation(name: str, x: np.ndarray) -> np.ndarray:
    return _lookup(name)[0](x)


def activation_grad(name: str, x: np.ndarray) -> np.ndarray:
    return _lookup(name)[1](x)


def compose(name: str, x: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``f`` over and over: the syllabus's "sigmoid applied again and again" picture.

    Inputs:
        x: (N,) starting points.
        depth: n >= 0, how many times f is applied.
    Returns:
        values: (n + 1, N), values[k] = f^k(x) (values[0] = x).
        grad_products: (n + 1, N), grad_products[k] = d f^k(x) / dx
            = prod_{j < k} f'(f^j(x)) by the chain rule (grad_products[0] = 1).
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    f, f_grad = _lookup(name)
    x = np.asarray(x, dtype=float)
    values = np.empty((depth + 1,) + x.shape)
    grad_products = np.empty_like(values)
    values[0], grad_products[0] = x, 1.0
    for k in range(depth):
        values[k + 1] = f(values[k])
        grad_products[k + 1] = grad_products[k] * f_grad(values[k])
    return values, grad_products


def _lookup(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"nonlinearity must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None
