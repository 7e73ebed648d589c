"""Recurrent cells. Each module has the same two stateless functions, backward under forward:

    forward(x_proj, weight_hh, bias_hh, h0, c0, nonlinearity) -> (hidden (T, B, H), cache)
    backward(grad_output, cache, weight_hh, truncation)
        -> (grad_x_proj, grad_h_proj, grad_hidden, grad_cell)

``x_proj = x @ weight_ih.T + bias_ih`` (T, B, G*H) is computed for all steps in one matmul by the
caller, and the weight gradients are one matmul each after the loop (``engine.bptt``), so only the
recurrence itself loops over time.

``grad_output`` is d loss / d h_t arriving from outside the recurrence (the head, or the layer
above), shaped (T, ..., B, H): any extra axes after time are carried through every step by
broadcasting, which is how the diagnostics push many upstream gradients through one sweep.
The returned arrays share that layout; ``grad_cell`` is None except for lstm.
``grad_x_proj`` is d loss / d x_proj and ``grad_h_proj`` is d loss / d (h_{t-1} @ weight_hh.T +
bias_hh), both (T, ..., B, G*H); they differ only for gru, whose reset gate sits between the two.

``truncation=k`` cuts the gradient (not the state) between steps t-1 and t whenever t % k == 0:
exactly what ``h.detach()`` at the start of every chunk of k steps does in PyTorch.
"""

from . import gru, lstm, rnn
from .truncation import cuts_gradient

__all__ = ["CELL_MODULES", "cuts_gradient"]

CELL_MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru}

