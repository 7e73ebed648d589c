"""GRU layer, exactly as the PyTorch ``torch.nn.GRU`` documentation writes it (gate order
r, z, n); this is the variant of Cho et al. (2014), with the reset gate applied after the projection
(r * (W_hn h + b_hn), as in cuDNN) rather than before it (W_hn (r * h)):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)            reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)            update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))         candidate: r scales the *projected* h
    h' = (1 - z) * n + z * h

In this convention z is the carry gate: z = 1 copies h unchanged (texts that write
h' = z * n + (1 - z) * h call the same quantity 1 - z). A positive bias on the z rows of bias_ih
(``engine.init_params(update_bias=...)``) starts every unit near carrying, as the forget-gate bias
does for an LSTM. Backward, with dh the total d loss / d h':

    da_n = dh * (1 - z) * (1 - n^2)
    da_z = dh * (h - n) * z(1-z)
    da_r = da_n * (W_hn h + b_hn) * r(1-r)
    d(W_h h + b_h) = [da_r, da_z, da_n * r]                (what reaches W_hh and b_hh)
    dh_prev = dh * z + d(W_h h + b_h) @ W_hh               (z is the carry path)
"""

from __future__ import annotations

import numpy as np

from .._types import Cache, FloatArray
from .truncation import cuts_gradient


def forward(x_proj: FloatArray, weight_hh: FloatArray, bias_hh: FloatArray, h0: FloatArray,
            c0: FloatArray | None = None, nonlinearity: str | None = None
            ) -> tuple[FloatArray, Cache]:
    """The recurrence over all T steps.

    Args:
        x_proj: (T, B, 3H) W_ih x_t + b_ih for every step; weight_hh: (3H, H); bias_hh: (3H,).
        h0: (B, H). c0, nonlinearity: ignored (lstm and rnn only).
    Returns:
        hidden (T, B, H) and the cache (gates (T, B, 3, H), h_proj_n = W_hn h + b_hn (T, B, H),
        h0, hidden).
    """
    seq_len, batch, three_h = x_proj.shape
    H = three_h // 3
    # sigmoid(a) = 0.5 + 0.5 tanh(a / 2): halve the r and z pre-activations, one tanh for both.
    half = np.concatenate([np.full(2 * H, 0.5), np.ones(H)])  # (3H,)
    x_rz = x_proj[..., :2 * H] * 0.5  # (T, B, 2H)
    x_n = x_proj[..., 2 * H:]  # (T, B, H)
    w_hh_t = weight_hh.T * half  # (H, 3H)
    b_hh = bias_hh * half
    gates = np.empty((seq_len, batch, 3, H))  # r, z, n
    h_proj_n = np.empty((seq_len, batch, H))  # W_hn h + b_hn, needed for d r
    hidden = np.empty((seq_len, batch, H))
    h = h0
    for t in range(seq_len):
        gh = h @ w_hh_t + b_hh  # (B, 3H)
        rz = np.tanh((x_rz[t] + gh[:, :2 * H]).reshape(batch, 2, H), out=gates[t, :, :2])
        rz *= 0.5
        rz += 0.5
        h_proj_n[t] = gh[:, 2 * H:]
        n = np.tanh(x_n[t] + rz[:, 0] * gh[:, 2 * H:], out=gates[t, :, 2])
        h = np.add(n, rz[:, 1] * (h - n), out=hidden[t])
    return hidden, {"gates": gates, "h_proj_n": h_proj_n, "h0": h0, "hidden": hidden}


def backward(grad_output: FloatArray, cache: Cache, weight_hh: FloatArray,
             truncation: int | None = None
             ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Exact BPTT through the recurrence (truncated at multiples of ``truncation``).

    Args:
        grad_output: (T, ..., B, H) d loss / d h_t from outside the recurrence.
        cache: from ``forward``; weight_hh: (3H, H).
    Returns:
        (grad_x_proj, grad_h_proj, grad_hidden, None): d loss / d x_proj and d loss / d
        (W_hh h + b_hh), both (T, ..., B, 3H) (they differ in the n block, which r scales), and
        d loss / d h_t (T, ..., B, H).
    """
    gates, h_proj_n = cache["gates"], cache["h_proj_n"]
    r, z, n = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]  # each (T, B, H)
    h_prev = np.concatenate([cache["h0"][None], cache["hidden"][:-1]])  # (T, B, H)
    gain_zn = np.stack([(h_prev - n) * z * (1 - z), (1 - z) * (1 - n * n)], axis=2)  # (T,B,2,H)
    gain_r = h_proj_n * r * (1 - r)  # (T, B, H)

    seq_len = gates.shape[0]
    extra = grad_output.shape[1:-2]
    batch, H = grad_output.shape[-2:]
    grad_x = np.empty((seq_len, *extra, batch, 3, H))
    grad_h = np.empty_like(grad_x)
    grad_hidden = np.empty(grad_output.shape)
    dh_next: FloatArray | float = 0.0
    for t in range(seq_len - 1, -1, -1):
        dh = np.add(grad_output[t], dh_next, out=grad_hidden[t])
        dx = grad_x[t]  # (..., B, 3, H): d a_r, d a_z, d a_n
        np.multiply(dh[..., None, :], gain_zn[t], out=dx[..., 1:, :])
        np.multiply(dx[..., 2, :], gain_r[t], out=dx[..., 0, :])
        dgh = grad_h[t]
        dgh[..., :2, :] = dx[..., :2, :]
        np.multiply(dx[..., 2, :], r[t], out=dgh[..., 2, :])
        if cuts_gradient(t, truncation):
            dh_next = 0.0
        else:
            dh_next = dh * z[t] + dgh.reshape(*extra, batch, 3 * H) @ weight_hh
    shape = (seq_len, *extra, batch, 3 * H)
    return grad_x.reshape(shape), grad_h.reshape(shape), grad_hidden, None
