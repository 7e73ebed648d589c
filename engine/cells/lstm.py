"""LSTM layer, as the PyTorch ``torch.nn.LSTM`` documentation writes it (gate order i, f, g, o in
the stacked weights); the cell c is the constant error carousel of Hochreiter & Schmidhuber
(1997), with the forget gate f of Gers, Schmidhuber & Cummins (2000):

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh   (W_ig x + b_ig + W_hg h + b_hg)      candidate
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g                              the cell: an addition, not a product
    h' = o * tanh(c')

Backward, with dh, dc the total derivatives at step t:

    dc  = dc_next + dh * o * (1 - tanh(c)^2)
    da_i = dc * g * i(1-i);  da_f = dc * c_prev * f(1-f);  da_g = dc * i * (1-g^2)
    da_o = dh * tanh(c) * o(1-o)
    dc_prev = dc * f          <- the constant error carousel: with f = 1 this is an identity
    dh_prev = da @ W_hh
"""

from __future__ import annotations

import numpy as np

from .._types import Cache, FloatArray
from .truncation import cuts_gradient

# sigmoid(a) = 0.5 + 0.5 tanh(a / 2), so one tanh per step computes all four gates:
# pre-scale the sigmoid gates' pre-activations by 1/2, then map tanh's output back.
_PRE_SCALE = np.array([0.5, 0.5, 1.0, 0.5])[:, None]  # (4, 1) per gate block (i, f, g, o)
_POST_ADD = np.array([0.5, 0.5, 0.0, 0.5])[:, None]


def forward(x_proj: FloatArray, weight_hh: FloatArray, bias_hh: FloatArray, h0: FloatArray,
            c0: FloatArray | None = None, nonlinearity: str | None = None
            ) -> tuple[FloatArray, Cache]:
    """The recurrence over all T steps.

    Args:
        x_proj: (T, B, 4H) W_ih x_t + b_ih for every step; weight_hh: (4H, H); bias_hh: (4H,).
        h0, c0: (B, H) initial hidden and cell state. nonlinearity: ignored (rnn only).
    Returns:
        hidden (T, B, H) and the cache (gates (T, B, 4, H), cell (T, B, H), tanh_cell, c0).
    Raises:
        ValueError: ``c0`` is None (an lstm needs a cell state to start from).
    """
    if c0 is None:
        raise ValueError("lstm needs c0, the initial cell state (B, H)")
    seq_len, batch, four_h = x_proj.shape
    H = four_h // 4
    pre_scale = np.repeat(_PRE_SCALE[:, 0], H)  # (4H,)
    pre = (x_proj + bias_hh) * pre_scale  # (T, B, 4H)
    w_hh_t = weight_hh.T * pre_scale  # (H, 4H)
    gates = np.empty((seq_len, batch, 4, H))
    cell = np.empty((seq_len, batch, H))
    tanh_cell = np.empty_like(cell)
    hidden = np.empty_like(cell)
    h, c = h0, c0
    for t in range(seq_len):
        gate = gates[t]  # (B, 4, H)
        np.tanh((pre[t] + h @ w_hh_t).reshape(batch, 4, H), out=gate)
        gate *= _PRE_SCALE
        gate += _POST_ADD
        c = np.multiply(gate[:, 1], c, out=cell[t])  # f * c
        c += gate[:, 0] * gate[:, 2]  # + i * g
        h = np.multiply(gate[:, 3], np.tanh(c, out=tanh_cell[t]), out=hidden[t])
    return hidden, {"gates": gates, "cell": cell, "tanh_cell": tanh_cell, "c0": c0}


def backward(grad_output: FloatArray, cache: Cache, weight_hh: FloatArray,
             truncation: int | None = None
             ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Exact BPTT through the recurrence (truncated at multiples of ``truncation``).

    Args:
        grad_output: (T, ..., B, H) d loss / d h_t from outside the recurrence.
        cache: from ``forward``; weight_hh: (4H, H).
    Returns:
        (grad_a, grad_a, grad_hidden, grad_cell), where grad_a (T, ..., B, 4H) is d loss / d
        pre-activation of the four gates, grad_hidden and grad_cell (T, ..., B, H).
    """
    gates, cell, tanh_cell = cache["gates"], cache["cell"], cache["tanh_cell"]
    i, f, g, o = (gates[:, :, k] for k in range(4))  # each (T, B, H)
    cell_prev = np.concatenate([cache["c0"][None], cell[:-1]])  # (T, B, H)
    # Everything that does not depend on the upstream gradient, for all steps at once:
    dc_from_dh = o * (1.0 - tanh_cell**2)  # d c-path / d h: (T, B, H)
    gain_from_dc = np.stack([g * i * (1 - i), cell_prev * f * (1 - f), i * (1 - g * g)], axis=2)
    gain_from_dh = tanh_cell * o * (1 - o)  # (T, B, H)

    seq_len = gates.shape[0]
    extra = grad_output.shape[1:-2]  # the diagnostics' extra axes, usually ()
    batch, H = grad_output.shape[-2:]
    grad_a = np.empty((seq_len, *extra, batch, 4, H))
    grad_hidden = np.empty(grad_output.shape)
    grad_cell = np.empty(grad_output.shape)
    dh_next: FloatArray | float = 0.0
    dc_next: FloatArray | float = 0.0
    for t in range(seq_len - 1, -1, -1):
        dh = np.add(grad_output[t], dh_next, out=grad_hidden[t])
        dc = np.multiply(dh, dc_from_dh[t], out=grad_cell[t])
        dc += dc_next
        da = grad_a[t]  # (..., B, 4, H)
        np.multiply(dc[..., None, :], gain_from_dc[t], out=da[..., :3, :])
        np.multiply(dh, gain_from_dh[t], out=da[..., 3, :])
        if cuts_gradient(t, truncation):
            dh_next = dc_next = 0.0
        else:
            dh_next = da.reshape(*extra, batch, 4 * H) @ weight_hh
            dc_next = dc * f[t]
    grad_a = grad_a.reshape(seq_len, *extra, batch, 4 * H)
    return grad_a, grad_a, grad_hidden, grad_cell
