"""The engine against PyTorch in float64, from the same weights.

Two gold models per case:
- ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` + ``nn.Linear`` loaded with ``load_state_dict`` straight
  from the engine's parameter dict (sigmoid rnn, which ``nn.RNN`` lacks, uses the step loop below);
  truncation runs the module chunk by chunk with the state ``.detach()``ed in between.
- an explicit loop over steps and layers with ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell``
  (sigmoid: the rnn step written by hand), ``retain_grad()`` on every h_t (and c_t), so that
  ``grad_hidden`` (and ``grad_cell``) of every layer and step has a PyTorch counterpart.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab import engine
from tests.engine_helpers import CELL_CASE_IDS, CELL_CASES, make_problem, max_abs_diff_ratio

pytestmark = pytest.mark.gold  # before the skip below: tests/conftest.py reads it
torch = pytest.importorskip("torch")
nn = torch.nn

TOLERANCE = 1e-10
SIZES = dict(seq_len=7, input_size=3, hidden_size=4, output_size=5)
MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def _tensor(array):
    return torch.tensor(np.asarray(array), dtype=torch.float64)


def _cross_entropy(logits, targets):
    """logits: (T, B, K) tensor; targets: (T, B) ints with -1 for "no loss"."""
    num_classes = logits.shape[-1]
    loss_fn = nn.CrossEntropyLoss(reduction="sum", ignore_index=-1)
    return loss_fn(logits.reshape(-1, num_classes), torch.as_tensor(targets).reshape(-1).long())


def _split_params(params):
    recurrent = {key: _tensor(value) for key, value in params.items()
                 if not key.startswith("head.")}
    head = {key.removeprefix("head."): _tensor(value) for key, value in params.items()
            if key.startswith("head.")}
    return recurrent, head


def _head(params):
    num_classes, hidden_size = params["head.weight"].shape
    head = nn.Linear(hidden_size, num_classes, dtype=torch.float64)
    head.load_state_dict(_split_params(params)[1], strict=True)
    return head


def _torch_h0(cell, h0):
    if h0 is None:
        return None
    if cell == "lstm":
        return tuple(_tensor(state) for state in h0)
    return _tensor(h0)


def module_gold(cell, nonlinearity, params, inputs, targets, h0, truncation):
    """nn.RNN/LSTM/GRU + nn.Linear loaded from the engine's dict.
    Returns (loss, {key: grad}, top hidden (T, B, H)) as NumPy."""
    _, hidden_size, _, num_layers = engine.params.infer_sizes(cell, params)
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    model = MODULES[cell](inputs.shape[-1], hidden_size, num_layers, dtype=torch.float64, **kwargs)
    recurrent, _ = _split_params(params)
    model.load_state_dict(recurrent, strict=True)
    head = _head(params)

    x = _tensor(inputs)
    seq_len = x.shape[0]
    chunk = truncation or seq_len
    state = _torch_h0(cell, h0)
    outputs = []
    for start in range(0, seq_len, chunk):
        out, state = model(x[start:start + chunk], state)  # out: (chunk, B, H)
        state = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()
        outputs.append(out)
    top = torch.cat(outputs)  # (T, B, H)
    loss = _cross_entropy(head(top), targets)
    loss.backward()
    grads = {key: value.grad.numpy() for key, value in model.named_parameters()}
    grads.update({f"head.{key}": value.grad.numpy() for key, value in head.named_parameters()})
    return loss.item(), grads, top.detach().numpy()


class _SigmoidRNNCell(nn.Module):
    """h' = sigmoid(W_ih x + b_ih + W_hh h + b_hh), with nn.RNNCell's parameter names."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.zeros(hidden_size, input_size, dtype=torch.float64))
        self.weight_hh = nn.Parameter(torch.zeros(hidden_size, hidden_size, dtype=torch.float64))
        self.bias_ih = nn.Parameter(torch.zeros(hidden_size, dtype=torch.float64))
        self.bias_hh = nn.Parameter(torch.zeros(hidden_size, dtype=torch.float64))

    def forward(self, x, h):
        return torch.sigmoid(x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T
                             + self.bias_hh)


def step_loop_gold(cell, nonlinearity, params, inputs, targets, h0, truncation):
    """One nn.*Cell per layer, stepped by hand; h (and c) detached at the start of every chunk.
    Returns (loss, grads, hidden (L, T, B, H), grad_hidden (L, T, B, H), grad_cell or None)."""
    input_size, hidden_size, _, num_layers = engine.params.infer_sizes(cell, params)
    seq_len, batch = targets.shape
    cells = []
    for layer in range(num_layers):
        fan_in = input_size if layer == 0 else hidden_size
        if cell == "rnn" and nonlinearity == "sigmoid":
            step = _SigmoidRNNCell(fan_in, hidden_size)
        elif cell == "rnn":
            step = nn.RNNCell(fan_in, hidden_size, nonlinearity=nonlinearity, dtype=torch.float64)
        else:
            step = CELLS[cell](fan_in, hidden_size, dtype=torch.float64)
        step.load_state_dict({name: _tensor(params[f"{name}_l{layer}"])
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
                             strict=True)
        cells.append(step)
    head = _head(params)

    zeros = np.zeros((num_layers, batch, hidden_size))
    if h0 is None:
        h0 = (zeros, zeros) if cell == "lstm" else zeros
    h_start, c_start = h0 if cell == "lstm" else (h0, zeros)
    h = [_tensor(h_start[layer]) for layer in range(num_layers)]
    c = [_tensor(c_start[layer]) for layer in range(num_layers)]
    x = _tensor(inputs)
    hs = [[None] * seq_len for _ in range(num_layers)]
    cs = [[None] * seq_len for _ in range(num_layers)]
    logits = []
    for t in range(seq_len):
        if truncation is not None and t > 0 and t % truncation == 0:
            h = [state.detach() for state in h]
            c = [state.detach() for state in c]
        layer_input = x[t]
        for layer, step in enumerate(cells):
            if cell == "lstm":
                h[layer], c[layer] = step(layer_input, (h[layer], c[layer]))
                c[layer].retain_grad()
                cs[layer][t] = c[layer]
            else:
                h[layer] = step(layer_input, h[layer])
            h[layer].retain_grad()
            hs[layer][t] = h[layer]
            layer_input = h[layer]
        logits.append(head(layer_input))
    loss = _cross_entropy(torch.stack(logits), targets)
    loss.backward()

    def grad_of(tensor):  # None when nothing downstream of this state reached the loss
        return np.zeros((batch, hidden_size)) if tensor.grad is None else tensor.grad.numpy()

    grads = {}
    for layer, step in enumerate(cells):
        for name, value in step.named_parameters():
            grads[f"{name}_l{layer}"] = value.grad.numpy()
    grads.update({f"head.{key}": value.grad.numpy() for key, value in head.named_parameters()})
    hidden = np.array([[state.detach().numpy() for state in layer] for layer in hs])
    grad_hidden = np.array([[grad_of(state) for state in layer] for layer in hs])
    grad_cell = (np.array([[grad_of(state) for state in layer] for layer in cs])
                 if cell == "lstm" else None)
    return loss.item(), grads, hidden, grad_hidden, grad_cell


CASES = [
    # (num_layers, batch, truncation, loss_at, random_h0)
    (1, 1, None, "every", False),
    (2, 3, None, "last", True),
    (3, 2, 3, "every", True),
    (2, 4, 2, "last", False),
    (3, 3, 1, "every", True),
]


def _case_id(case):
    num_layers, batch, truncation, loss_at, random_h0 = case
    return f"L{num_layers}-B{batch}-k{truncation}-{loss_at}-{'h0' if random_h0 else 'zero'}"


@pytest.fixture(params=CASES, ids=[_case_id(case) for case in CASES])
def case(request):
    return request.param


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
def test_loss_grads_and_top_hidden_match_the_torch_module(cell, nonlinearity, case):
    num_layers, batch, truncation, loss_at, random_h0 = case
    params, inputs, targets, h0 = make_problem(cell, batch=batch, num_layers=num_layers,
                                               loss_at=loss_at, seed=3, random_h0=random_h0,
                                               **SIZES)
    trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity,
                       truncation=truncation, h0=h0)
    if cell == "rnn" and nonlinearity == "sigmoid":  # nn.RNN has no sigmoid: the step loop
        loss, grads, hidden, _, _ = step_loop_gold(cell, nonlinearity, params, inputs, targets,
                                                   h0, truncation)
        top = hidden[-1]
    else:
        loss, grads, top = module_gold(cell, nonlinearity, params, inputs, targets, h0,
                                       truncation)

    assert trace.loss == pytest.approx(loss, rel=TOLERANCE, abs=TOLERANCE)
    assert max_abs_diff_ratio(trace.hidden[-1], top) < TOLERANCE
    assert set(grads) == set(trace.grads)
    for key, expected in grads.items():
        assert max_abs_diff_ratio(trace.grads[key], expected) < TOLERANCE, key


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
def test_grad_hidden_of_every_layer_and_step_matches_torch(cell, nonlinearity, case):
    num_layers, batch, truncation, loss_at, random_h0 = case
    params, inputs, targets, h0 = make_problem(cell, batch=batch, num_layers=num_layers,
                                               loss_at=loss_at, seed=4, random_h0=random_h0,
                                               **SIZES)
    trace = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity,
                       truncation=truncation, h0=h0)
    loss, grads, hidden, grad_hidden, grad_cell = step_loop_gold(
        cell, nonlinearity, params, inputs, targets, h0, truncation)

    assert trace.loss == pytest.approx(loss, rel=TOLERANCE, abs=TOLERANCE)
    assert max_abs_diff_ratio(trace.hidden, hidden) < TOLERANCE
    for key, expected in grads.items():
        assert max_abs_diff_ratio(trace.grads[key], expected) < TOLERANCE, key
    assert np.any(grad_hidden != 0)
    for layer in range(num_layers):
        for t in range(inputs.shape[0]):
            assert max_abs_diff_ratio(trace.grad_hidden[layer, t], grad_hidden[layer, t]) \
                < TOLERANCE, f"grad_hidden layer {layer} step {t}"
            if cell == "lstm":
                assert max_abs_diff_ratio(trace.grad_cell[layer, t], grad_cell[layer, t]) \
                    < TOLERANCE, f"grad_cell layer {layer} step {t}"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_engine_params_load_into_torch_state_dicts_key_for_key(cell):
    """The promise of engine.params: the dict plugs into PyTorch with no renaming or reshaping."""
    params = engine.init_params(cell, 3, 4, 5, num_layers=2, seed=0)
    model = MODULES[cell](3, 4, 2, dtype=torch.float64)
    head = nn.Linear(4, 5, dtype=torch.float64)
    torch_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    torch_shapes.update({f"head.{key}": tuple(value.shape)
                         for key, value in head.state_dict().items()})
    assert {key: value.shape for key, value in params.items()} == torch_shapes
    recurrent, head_state = _split_params(params)
    model.load_state_dict(recurrent, strict=True)
    head.load_state_dict(head_state, strict=True)
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), params[key])
