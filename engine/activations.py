"""Element-wise nonlinearities, each a pair (value, derivative), and the facts the activations
page shows about them.

Every function here is numerically stable for |x| up to 1e4 and beyond: no overflow warnings, no
NaN. The derivatives are computed from ``x`` in closed forms that stay accurate where the textbook
``1 - tanh(x)**2`` or ``s * (1 - s)`` round to exactly 0 (saturated units), so the activations page
can show a derivative of 1e-300 instead of a flat zero.

The cells use the output-based derivatives (``1 - h**2``, ``s * (1 - s)``) instead, exactly as
PyTorch's autograd does, so that gradients match PyTorch's.

Shapes: every function maps an array of any shape to one of the same shape (written (...)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from ._types import FloatArray

NONLINEARITIES = ("tanh", "sigmoid", "relu")

# sup |phi'(x)| over the real line: the gamma of Pascanu, Mikolov & Bengio (2013).
DERIVATIVE_BOUND = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}

Elementwise = Callable[[npt.ArrayLike], FloatArray]


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """Logistic function 1 / (1 + exp(-x)), accurate in both tails (no exp overflow). (...)."""
    # exp(-log(1 + exp(-x))); logaddexp never overflows and keeps tiny values like 1e-4000 -> 0.
    with np.errstate(invalid="ignore"):  # a nan input is a nan output, not a warning
        return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


def sigmoid_grad(x: npt.ArrayLike) -> FloatArray:
    """sigmoid'(x) = sigmoid(x) * sigmoid(-x); its maximum is 0.25, at x = 0. (...)."""
    x = np.asarray(x, dtype=np.float64)
    return sigmoid(x) * sigmoid(-x)


def tanh(x: npt.ArrayLike) -> FloatArray:
    """tanh(x), (...)."""
    return np.tanh(np.asarray(x, dtype=np.float64))


def tanh_grad(x: npt.ArrayLike) -> FloatArray:
    """tanh'(x) = 1 / cosh(x)^2 = 4 e^{-2|x|} / (1 + e^{-2|x|})^2; its maximum is 1, at x = 0."""
    # exp(-|x|) squared, not exp(-2|x|): 2|x| overflows (a warning) for |x| above ~9e307.
    half = np.exp(-np.abs(np.asarray(x, dtype=np.float64)))  # in [0, 1]: cannot overflow
    e = half * half  # underflows quietly to 0 for |x| above ~373
    return 4.0 * e / (1.0 + e) ** 2


def relu(x: npt.ArrayLike) -> FloatArray:
    """max(x, 0), (...)."""
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def relu_grad(x: npt.ArrayLike) -> FloatArray:
    """1 where x > 0 and 0 elsewhere (PyTorch's convention at exactly 0). (...)."""
    return (np.asarray(x, dtype=np.float64) > 0).astype(np.float64)


ACTIVATIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
}


def activation(name: str, x: npt.ArrayLike) -> FloatArray:
    """f(x) for f = ``name``, (...) -> (...).

    Raises:
        ValueError: ``name`` is not "sigmoid", "tanh" or "relu".
    """
    return _lookup(name)[0](x)


def activation_grad(name: str, x: npt.ArrayLike) -> FloatArray:
    """f'(x) for f = ``name``, (...) -> (...).

    Raises:
        ValueError: ``name`` is not "sigmoid", "tanh" or "relu".
    """
    return _lookup(name)[1](x)


def compose(name: str, x: npt.ArrayLike, depth: int) -> tuple[FloatArray, FloatArray]:
    """Apply ``f`` over and over: the "sigmoid applied again and again" picture.

    Args:
        name: "sigmoid" | "tanh" | "relu".
        x: (N,) starting points (any shape works; it is carried through).
        depth: n >= 0, how many times f is applied.
    Returns:
        values: (n + 1, N), values[k] = f^k(x) (values[0] = x).
        grad_products: (n + 1, N), grad_products[k] = d f^k(x) / dx
            = prod_{j < k} f'(f^j(x)) by the chain rule (grad_products[0] = 1).
    Raises:
        ValueError: unknown ``name``, or ``depth`` not an integer >= 0.
    """
    if int(depth) != depth or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
    depth = int(depth)
    f, f_grad = _lookup(name)
    start = np.asarray(x, dtype=np.float64)
    values = np.empty((depth + 1,) + start.shape)
    grad_products = np.empty_like(values)
    values[0], grad_products[0] = start, 1.0
    for k in range(depth):
        values[k + 1] = f(values[k])
        grad_products[k + 1] = grad_products[k] * f_grad(values[k])
    return values, grad_products


def grad_maxima(x: npt.ArrayLike, names: Iterable[str] = NONLINEARITIES) -> dict[str, float]:
    """The largest slope of each function over the points ``x``, read off them rather than
    assumed (with 0 among the points: sigmoid 0.25, tanh 1, relu 1).

    Args:
        x: (N,) points, N >= 1.
        names: the functions wanted.
    Returns:
        {name: max over x of f'(x)}.
    Raises:
        ValueError: ``x`` is empty, or a name is unknown.
    """
    points = np.asarray(x, dtype=np.float64)
    if points.size == 0:
        raise ValueError("x must hold at least one point")
    return {name: float(activation_grad(name, points).max()) for name in names}


def sigmoid_fixed_point() -> float:
    """The x* with sigmoid(x*) = x* (about 0.6590). sigmoid^n(x) tends to it from every start,
    because |sigmoid'| <= 0.25 < 1 makes x -> sigmoid(x) a contraction (Banach's fixed-point
    theorem)."""
    x = 0.5
    for _ in range(60):  # the error shrinks by at least 4x per step: 60 steps reach float64
        x = float(sigmoid(x))
    return x


def _lookup(name: str) -> tuple[Elementwise, Elementwise]:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"nonlinearity must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None
