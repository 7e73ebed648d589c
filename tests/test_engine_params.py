"""``engine.init_params`` and the argument checks of ``engine.run``."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab import engine

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = ("rnn", "lstm", "gru")
D, H, K = 3, 5, 4


def _gate_blocks(weight_hh, hidden_size):
    """(G*H, H) -> (G, H, H): PyTorch stacks the gates' H x H blocks along the first axis."""
    return weight_hh.reshape(-1, hidden_size, hidden_size)


@pytest.mark.parametrize("init", engine.INITS)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_shapes_follow_the_pytorch_state_dict(cell, num_layers, init):
    params = engine.init_params(cell, D, H, K, num_layers, init=init, seed=1)
    gh = GATES[cell] * H
    expected = {}
    for layer in range(num_layers):
        expected[f"weight_ih_l{layer}"] = (gh, D if layer == 0 else H)
        expected[f"weight_hh_l{layer}"] = (gh, H)
        expected[f"bias_ih_l{layer}"] = (gh,)
        expected[f"bias_hh_l{layer}"] = (gh,)
    expected["head.weight"] = (K, H)
    expected["head.bias"] = (K,)
    assert {key: value.shape for key, value in params.items()} == expected
    assert all(value.dtype == np.float64 for value in params.values())
    assert all(np.all(np.isfinite(value)) for value in params.values())


@pytest.mark.parametrize("cell", CELLS)
def test_default_init_is_uniform_within_one_over_sqrt_h(cell):
    hidden_size = 16
    params = engine.init_params(cell, D, hidden_size, K, 2, seed=0)
    bound = 1 / np.sqrt(hidden_size)
    for key, value in params.items():
        assert np.max(np.abs(value)) <= bound, key
    # not a degenerate fill: the values spread over the interval, evenly
    every_value = np.concatenate([value.ravel() for value in params.values()])
    assert np.max(every_value) > 0.95 * bound and np.min(every_value) < -0.95 * bound
    assert np.std(every_value) == pytest.approx(bound / np.sqrt(3), rel=0.1)


@pytest.mark.parametrize("init", ["normal", "orthogonal", "identity"])
@pytest.mark.parametrize("cell", CELLS)
def test_non_default_inits_zero_the_biases_and_keep_the_head_default(cell, init):
    params = engine.init_params(cell, D, H, K, 2, init=init, seed=0)
    for layer in range(2):
        assert np.all(params[f"bias_ih_l{layer}"] == 0)
        assert np.all(params[f"bias_hh_l{layer}"] == 0)
    assert np.max(np.abs(params["head.weight"])) <= 1 / np.sqrt(H)
    assert np.any(params["head.weight"] != 0)


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0, 2.5, 10.0])
@pytest.mark.parametrize("init", engine.INITS)
@pytest.mark.parametrize("cell", CELLS)
def test_scale_sets_the_largest_singular_value_of_every_gate_block(cell, init, scale):
    params = engine.init_params(cell, D, H, K, 2, init=init, scale=scale, seed=3)
    for layer in range(2):
        for gate, block in enumerate(_gate_blocks(params[f"weight_hh_l{layer}"], H)):
            assert np.linalg.norm(block, 2) == pytest.approx(scale, rel=1e-12, abs=1e-15), \
                f"layer {layer} gate {gate}"


@pytest.mark.parametrize("cell", CELLS)
def test_scale_leaves_the_input_weights_alone(cell):
    plain = engine.init_params(cell, D, H, K, 2, init="normal", seed=3)
    scaled = engine.init_params(cell, D, H, K, 2, init="normal", scale=7.0, seed=3)
    for key in plain:
        if not key.startswith("weight_hh"):
            assert np.array_equal(plain[key], scaled[key]), key
    assert not np.array_equal(plain["weight_hh_l0"], scaled["weight_hh_l0"])


@pytest.mark.parametrize("scale", [None, 0.5, 0.9, 3.0])
@pytest.mark.parametrize("cell", CELLS)
def test_identity_init_gives_scaled_identity_blocks(cell, scale):
    params = engine.init_params(cell, D, H, K, 2, init="identity", scale=scale, seed=0)
    expected = (1.0 if scale is None else scale) * np.eye(H)
    for layer in range(2):
        for block in _gate_blocks(params[f"weight_hh_l{layer}"], H):
            np.testing.assert_allclose(block, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("scale", [None, 0.7, 4.0])
@pytest.mark.parametrize("cell", CELLS)
def test_orthogonal_blocks_have_equal_singular_values(cell, scale):
    params = engine.init_params(cell, D, H, K, 2, init="orthogonal", scale=scale, seed=5)
    blocks = np.concatenate([_gate_blocks(params[f"weight_hh_l{layer}"], H) for layer in (0, 1)])
    for block in blocks:
        singular_values = np.linalg.svd(block, compute_uv=False)
        np.testing.assert_allclose(singular_values, 1.0 if scale is None else scale, rtol=1e-12)
    # each gate gets its own random rotation, not one matrix repeated
    assert not np.allclose(blocks[0], blocks[1])


def test_normal_init_has_the_documented_spread():
    hidden_size = 200
    params = engine.init_params("rnn", 50, hidden_size, K, init="normal", seed=0)
    assert np.std(params["weight_hh_l0"]) == pytest.approx(1 / np.sqrt(hidden_size), rel=0.02)
    assert np.std(params["weight_ih_l0"]) == pytest.approx(1 / np.sqrt(50), rel=0.05)


@pytest.mark.parametrize("init", engine.INITS)
def test_forget_bias_sets_the_lstm_forget_slice_only(init):
    num_layers = 2
    plain = engine.init_params("lstm", D, H, K, num_layers, init=init, seed=2)
    params = engine.init_params("lstm", D, H, K, num_layers, init=init, forget_bias=1.5, seed=2)
    forget = slice(H, 2 * H)
    for layer in range(num_layers):
        assert np.all(params[f"bias_ih_l{layer}"][forget] == 1.5)
        assert np.all(params[f"bias_hh_l{layer}"][forget] == 0.0)
        for key in (f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            keep = np.ones(4 * H, dtype=bool)
            keep[forget] = False
            assert np.array_equal(params[key][keep], plain[key][keep]), key
    for key in plain:
        if "bias" not in key or key.startswith("head"):
            assert np.array_equal(params[key], plain[key]), key


def test_forget_bias_opens_the_forget_gate():
    params = engine.init_params("lstm", D, H, K, forget_bias=3.0, init="normal", scale=0.0,
                                seed=0)
    inputs = np.zeros((2, 1, D))
    trace = engine.run("lstm", params, inputs, np.zeros((2, 1), dtype=int))
    np.testing.assert_allclose(trace.gates["f"], 1 / (1 + np.exp(-3.0)), rtol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_forget_bias_is_ignored_without_a_forget_gate(cell):
    plain = engine.init_params(cell, D, H, K, 2, seed=4)
    params = engine.init_params(cell, D, H, K, 2, forget_bias=5.0, seed=4)
    for key in plain:
        assert np.array_equal(params[key], plain[key]), key


@pytest.mark.parametrize("init", engine.INITS)
def test_update_bias_sets_the_gru_update_gate_rows_only(init):
    """Gate order r, z, n: the update gate z is the second block of H rows."""
    num_layers = 2
    plain = engine.init_params("gru", D, H, K, num_layers, init=init, seed=2)
    params = engine.init_params("gru", D, H, K, num_layers, init=init, update_bias=2.5, seed=2)
    update = slice(H, 2 * H)
    for layer in range(num_layers):
        assert np.all(params[f"bias_ih_l{layer}"][update] == 2.5)
        assert np.all(params[f"bias_hh_l{layer}"][update] == 0.0)
        for key in (f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            keep = np.ones(3 * H, dtype=bool)
            keep[update] = False
            assert np.array_equal(params[key][keep], plain[key][keep]), key
    for key in plain:
        if "bias" not in key or key.startswith("head"):
            assert np.array_equal(params[key], plain[key]), key


def test_update_bias_none_keeps_the_inits_biases():
    plain = engine.init_params("gru", D, H, K, seed=3)
    params = engine.init_params("gru", D, H, K, update_bias=None, seed=3)
    assert all(np.array_equal(params[key], plain[key]) for key in plain)
    assert not np.all(plain["bias_ih_l0"][H:2 * H] == 0), "the default init draws its biases"


def test_update_bias_keeps_the_gru_carrying_its_state():
    """h' = (1 - z) n + z h: with every weight 0 and the bias b, z = sigmoid(b) and n = 0, so the
    state shrinks by exactly sigmoid(b) per step; at b = 0 it halves."""
    for bias in (0.0, 3.0):
        params = engine.init_params("gru", D, H, K, init="normal", scale=0.0, update_bias=bias,
                                    seed=0)
        params["weight_ih_l0"][:] = 0.0
        h0 = np.full((1, 1, H), 0.8)
        trace = engine.run("gru", params, np.zeros((3, 1, D)), np.zeros((3, 1), dtype=int), h0=h0)
        z = 1 / (1 + np.exp(-bias))
        np.testing.assert_allclose(trace.gates["z"], z, rtol=1e-14)
        np.testing.assert_allclose(trace.hidden[0, :, 0, 0], 0.8 * z ** np.arange(1, 4),
                                   rtol=1e-12)


@pytest.mark.gold
def test_update_bias_is_torchs_update_gate():
    """Loaded into ``torch.nn.GRU``, the bias moves PyTorch's z (r, z, n order): with every weight
    and other bias 0 and zero input, torch's h1 = sigmoid(b) h0. Put in the r rows it would give
    h0 / 2, in the n rows tanh(b) / 2 + h0 / 2."""
    torch = pytest.importorskip("torch")
    params = engine.init_params("gru", D, H, K, init="normal", scale=0.0, update_bias=3.0, seed=0)
    params["weight_ih_l0"][:] = 0.0
    gru = torch.nn.GRU(D, H).double()
    gru.load_state_dict({k: torch.tensor(v) for k, v in params.items()
                         if not k.startswith("head.")})
    h0 = torch.full((1, 1, H), 0.8, dtype=torch.float64)
    with torch.no_grad():
        _, h1 = gru(torch.zeros((1, 1, D), dtype=torch.float64), h0)
    np.testing.assert_allclose(h1.numpy(), 0.8 / (1 + np.exp(-3.0)), rtol=1e-14)
    trace = engine.run("gru", params, np.zeros((1, 1, D)), np.zeros((1, 1), dtype=int),
                       h0=h0.numpy())
    np.testing.assert_allclose(trace.hidden[0], h1.numpy(), rtol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_update_bias_is_ignored_without_an_update_gate(cell):
    plain = engine.init_params(cell, D, H, K, 2, seed=4)
    params = engine.init_params(cell, D, H, K, 2, update_bias=5.0, seed=4)
    for key in plain:
        assert np.array_equal(params[key], plain[key]), key


@pytest.mark.parametrize("init", engine.INITS)
@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_same_params_different_seed_different(cell, init):
    first = engine.init_params(cell, D, H, K, 2, init=init, seed=11)
    again = engine.init_params(cell, D, H, K, 2, init=init, seed=11)
    other = engine.init_params(cell, D, H, K, 2, init=init, seed=12)
    assert all(np.array_equal(first[key], again[key]) for key in first)
    # weight_hh of the identity init does not depend on the seed; everything random does
    differs = {key for key in first if not np.array_equal(first[key], other[key])}
    assert {"weight_ih_l0", "weight_ih_l1", "head.weight", "head.bias"} <= differs


def test_a_generator_seed_is_used_as_the_random_source():
    params = engine.init_params("gru", D, H, K, seed=np.random.default_rng(7))
    again = engine.init_params("gru", D, H, K, seed=np.random.default_rng(7))
    assert all(np.array_equal(params[key], again[key]) for key in params)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"cell": "transformer"}, "cell"),
    ({"init": "xavier"}, "init"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"hidden_size": 2.5}, "hidden_size"),
    ({"input_size": 0}, "input_size"),
    ({"output_size": -1}, "output_size"),
    ({"num_layers": 0}, "num_layers"),
    ({"scale": -0.5}, "scale"),
    ({"scale": float("nan")}, "scale"),
    ({"scale": float("inf")}, "scale"),
    ({"cell": "gru", "update_bias": float("nan")}, "update_bias"),
])
def test_bad_init_arguments_raise_a_value_error_naming_the_argument(kwargs, argument):
    arguments = dict(cell="rnn", input_size=D, hidden_size=H, output_size=K, num_layers=1)
    arguments.update(kwargs)
    cell = arguments.pop("cell")
    with pytest.raises(ValueError, match=argument):
        engine.init_params(cell, **arguments)


def _run_arguments(cell="rnn", seq_len=4, batch=2):
    params = engine.init_params(cell, D, H, K, 2, seed=0)
    inputs = np.zeros((seq_len, batch, D))
    targets = np.zeros((seq_len, batch), dtype=int)
    return params, inputs, targets


@pytest.mark.parametrize(("change", "message"), [
    (lambda p, x, y: (p, x[..., :2], y), "inputs"),  # wrong D
    (lambda p, x, y: (p, x[0], y), "inputs"),  # 2-D
    (lambda p, x, y: (p, x, y[:, :1]), "targets"),  # wrong B
    (lambda p, x, y: (p, x, y[:-1]), "targets"),  # wrong T
    (lambda p, x, y: (p, x, y.astype(float)), "targets"),  # not integers
    (lambda p, x, y: (p, x, y + K), "targets"),  # class K out of range
    (lambda p, x, y: (p, x, y - 2), "targets"),  # -2 is not "no target"
    (lambda p, x, y: ({k: v for k, v in p.items() if k != "head.weight"}, x, y), "head.weight"),
    (lambda p, x, y: ({**p, "bias_hh_l1": p["bias_hh_l1"][:-1]}, x, y), "bias_hh_l1"),
])
def test_run_rejects_malformed_inputs_targets_and_params(change, message):
    params, inputs, targets = change(*_run_arguments())
    with pytest.raises(ValueError, match=message):
        engine.run("rnn", params, inputs, targets)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nonlinearity": "softplus"}, "nonlinearity"),
    ({"truncation": 0}, "truncation"),
    ({"truncation": 1.5}, "truncation"),
    ({"h0": np.zeros((1, 2, H))}, "h0"),  # L = 2
    ({"h0": np.zeros((2, 3, H))}, "h0"),  # B = 2
])
def test_run_rejects_bad_options(kwargs, message):
    params, inputs, targets = _run_arguments()
    with pytest.raises(ValueError, match=message):
        engine.run("rnn", params, inputs, targets, **kwargs)


def test_run_rejects_an_unknown_cell_and_a_mismatched_params_dict():
    params, inputs, targets = _run_arguments("rnn")
    with pytest.raises(ValueError, match="cell"):
        engine.run("transformer", params, inputs, targets)
    with pytest.raises(ValueError, match="weight_hh_l0"):  # rnn weights given to an lstm
        engine.run("lstm", params, inputs, targets)


def test_lstm_h0_must_be_a_pair_of_correct_shapes():
    params, inputs, targets = _run_arguments("lstm")
    zeros = np.zeros((2, 2, H))
    with pytest.raises(ValueError, match="pair"):
        engine.run("lstm", params, inputs, targets, h0=zeros)
    with pytest.raises(ValueError, match="c0"):
        engine.run("lstm", params, inputs, targets, h0=(zeros, np.zeros((2, 2, H + 1))))
    trace = engine.run("lstm", params, inputs, targets, h0=(zeros, zeros))
    assert np.isfinite(trace.loss)
