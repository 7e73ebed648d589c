"""Vanilla (Elman) recurrent layer, as ``torch.nn.RNN``:

    h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   phi in {tanh, sigmoid, relu}

(PyTorch's module offers tanh and relu; sigmoid is the syllabus's other choice.)
Backward, with a_t the pre-activation and dh_t the total d loss / d h_t:

    da_t = dh_t * phi'(a_t)                   phi' from the output: 1 - h^2, h (1 - h), [h > 0]
    dh_{t-1} += da_t @ W_hh                   (the recurrent Jacobian is diag(phi'(a_t)) W_hh)
"""

from __future__ import annotations

import numpy as np

from .._types import Cache, FloatArray
from .truncation import cuts_gradient


def forward(x_proj: FloatArray, weight_hh: FloatArray, bias_hh: FloatArray, h0: FloatArray,
            c0: FloatArray | None = None, nonlinearity: str | None = "tanh"
            ) -> tuple[FloatArray, Cache]:
    """The recurrence over all T steps.

    Args:
        x_proj: (T, B, H) W_ih x_t + b_ih for every step (one matmul by the caller).
        weight_hh: (H, H); bias_hh: (H,); h0: (B, H); c0: ignored (lstm only).
        nonlinearity: "tanh" | "sigmoid" | "relu" (None means "tanh").
    Returns:
        hidden (T, B, H) and the cache for ``backward`` ({"dphi": (T, B, H)}).
    Raises:
        ValueError: unknown ``nonlinearity``.
    """
    nonlinearity = nonlinearity or "tanh"
    seq_len = x_proj.shape[0]
    pre = x_proj + bias_hh  # (T, B, H): both biases folded in once
    w_hh_t = np.ascontiguousarray(weight_hh.T)
    hidden = np.empty_like(pre)
    h = h0
    if nonlinearity == "tanh":
        for t in range(seq_len):
            h = np.tanh(pre[t] + h @ w_hh_t, out=hidden[t])
        dphi = 1.0 - hidden * hidden
    elif nonlinearity == "sigmoid":
        # sigmoid(a) = 0.5 + 0.5 tanh(a / 2): one ufunc per step instead of an exp and a divide
        pre *= 0.5  # pre is our own array; the weights are the caller's and must stay intact
        w_hh_t = weight_hh.T * 0.5
        for t in range(seq_len):
            h = np.tanh(pre[t] + h @ w_hh_t, out=hidden[t])
            h *= 0.5
            h += 0.5
        dphi = hidden * (1.0 - hidden)
    elif nonlinearity == "relu":
        for t in range(seq_len):
            h = np.maximum(pre[t] + h @ w_hh_t, 0.0, out=hidden[t])
        dphi = (hidden > 0).astype(hidden.dtype)
    else:
        raise ValueError(f"nonlinearity must be tanh, sigmoid or relu, got {nonlinearity!r}")
    return hidden, {"dphi": dphi}


def backward(grad_output: FloatArray, cache: Cache, weight_hh: FloatArray,
             truncation: int | None = None
             ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Exact BPTT through the recurrence (truncated at multiples of ``truncation``).

    Args:
        grad_output: (T, ..., B, H) d loss / d h_t from outside the recurrence.
        cache: from ``forward``; weight_hh: (H, H).
    Returns:
        (grad_pre, grad_pre, grad_hidden, None): d loss / d a_t (T, ..., B, H) twice (input
        and recurrent projections share the pre-activation), d loss / d h_t (T, ..., B, H).
    """
    dphi = cache["dphi"]  # (T, B, H)
    grad_pre = np.empty(grad_output.shape)
    grad_hidden = np.empty(grad_output.shape)
    dh_next: FloatArray | float = 0.0  # d loss / d h_t through h_{t+1}
    for t in range(dphi.shape[0] - 1, -1, -1):
        dh = np.add(grad_output[t], dh_next, out=grad_hidden[t])
        da = np.multiply(dh, dphi[t], out=grad_pre[t])
        dh_next = 0.0 if cuts_gradient(t, truncation) else da @ weight_hh
    return grad_pre, grad_pre, grad_hidden, None
