"""Parameter dicts laid out exactly as PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state_dict.

Keys, with G gates per cell (1 rnn, 4 lstm, 3 gru), H hidden units, D inputs, K outputs:
    weight_ih_l{k}: (G*H, D) for k = 0, (G*H, H) above
    weight_hh_l{k}: (G*H, H)
    bias_ih_l{k}, bias_hh_l{k}: (G*H,)
    head.weight: (K, H), head.bias: (K,)          (an ``nn.Linear`` named ``head``)
Gate blocks are stacked along the first axis in PyTorch's order: lstm (i, f, g, o), gru (r, z, n).
So ``{k: v.detach().numpy() for k, v in model.state_dict().items()}`` plugs straight in.
"""

from __future__ import annotations

import numpy as np

from ._types import FloatArray, Params

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
GATE_NAMES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
# The gate on the carry path: lstm's forget gate f (c' = f * c + ...), gru's update gate z
# (h' = (1 - z) * n + z * h, PyTorch's convention); rnn has none.
CARRY_GATE = {"lstm": "f", "gru": "z"}
INITS = ("default", "normal", "orthogonal", "identity")


def num_gates(cell: str) -> int:
    """G, the gate blocks stacked in ``weight_hh``: 1 rnn, 4 lstm, 3 gru.

    Raises:
        ValueError: ``cell`` is not "rnn", "lstm" or "gru".
    """
    try:
        return GATES[cell]
    except KeyError:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}") from None


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int = 1,
    *,
    init: str = "default",
    scale: float | None = None,
    forget_bias: float = 0.0,
    update_bias: float | None = None,
    seed: int | np.random.Generator = 0,
) -> Params:
    """Fresh float64 parameters for a stacked recurrent network with a linear read-out.

    init:
        "default"     PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
        "normal"      W_hh ~ N(0, 1/H), W_ih ~ N(0, 1/fan_in), biases 0.
        "orthogonal"  each H x H gate block of W_hh a random orthogonal matrix, W_ih as "normal".
        "identity"    each gate block of W_hh = I (Le, Jaitly & Hinton 2015), W_ih as "normal".
        The head is always PyTorch's ``nn.Linear`` default, U(-1/sqrt(H), 1/sqrt(H)).
    scale:
        If given, each H x H gate block of every ``weight_hh`` is rescaled so that its largest
        singular value equals ``scale`` exactly (up to rounding). This is the knob that moves an
        rnn across the vanishing / exploding boundary (gamma * scale vs 1). None keeps the init's.
    forget_bias:
        lstm only (ignored for rnn and gru): the forget gate's total bias b_if + b_hf is set to this
        value (b_if = forget_bias, b_hf = 0), overriding the init's.
    update_bias:
        gru only (ignored for rnn and lstm): the GRU's counterpart of the forget bias. The update
        gate's total bias b_iz + b_hz is set to this value (b_iz = update_bias, b_hz = 0, the
        second H rows of bias_ih / bias_hh, gate order r, z, n), overriding the init's. In
        PyTorch's convention h' = (1 - z) * n + z * h (``torch.nn.GRU`` documentation;
        engine/cells/gru.py), z = 1 carries the old state unchanged, so a positive bias starts
        every unit near "carry": z = sigmoid(update_bias) when the other inputs to the gate are
        0, sigmoid(3) = 0.95. Along the carry path the error then shrinks by about z per step
        instead of about 1/2, as sigmoid(forget_bias) does for the LSTM's cell (the "chrono"
        initialisation of Tallec & Ollivier 2018 sets these biases for the same reason). None
        keeps the init's biases.
    seed:
        an int or a ``np.random.Generator``; the same seed gives the same numbers.
    Returns:
        dict of float64 arrays, keys and shapes as in the module docstring.
    Raises:
        ValueError: unknown cell or init, a size that is not a positive integer, or a scale
            that is negative or not finite, or an update_bias that is not finite.
    """
    gates = num_gates(cell)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("output_size", output_size), ("num_layers", num_layers)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if scale is not None and not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0 or None, got {scale!r}")
    if update_bias is not None and not np.isfinite(update_bias):
        raise ValueError(f"update_bias must be a finite number or None, got {update_bias!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    params: Params = {}
    for layer in range(num_layers):
        fan_in = input_size if layer == 0 else H
        if init == "default":
            w_ih = rng.uniform(-bound, bound, (gates * H, fan_in))
            w_hh = rng.uniform(-bound, bound, (gates * H, H))
            b_ih = rng.uniform(-bound, bound, gates * H)
            b_hh = rng.uniform(-bound, bound, gates * H)
        else:
            w_ih = rng.normal(0.0, 1.0 / np.sqrt(fan_in), (gates * H, fan_in))
            if init == "normal":
                w_hh = rng.normal(0.0, 1.0 / np.sqrt(H), (gates * H, H))
            elif init == "orthogonal":
                w_hh = np.concatenate([_random_orthogonal(rng, H) for _ in range(gates)])
            else:
                w_hh = np.tile(np.eye(H), (gates, 1))
            b_ih = np.zeros(gates * H)
            b_hh = np.zeros(gates * H)
        if scale is not None:
            for block in w_hh.reshape(gates, H, H):  # views: rescaling writes through
                block *= _scale_factor(block, scale)
        if cell == "lstm":
            b_ih[H:2 * H] = forget_bias
            b_hh[H:2 * H] = 0.0
        if cell == "gru" and update_bias is not None:
            b_ih[H:2 * H] = update_bias  # the z rows (gate order r, z, n)
            b_hh[H:2 * H] = 0.0
        params[f"weight_ih_l{layer}"] = w_ih
        params[f"weight_hh_l{layer}"] = w_hh
        params[f"bias_ih_l{layer}"] = b_ih
        params[f"bias_hh_l{layer}"] = b_hh
    params["head.weight"] = rng.uniform(-bound, bound, (output_size, H))
    params["head.bias"] = rng.uniform(-bound, bound, output_size)
    return params


def infer_sizes(cell: str, params: Params) -> tuple[int, int, int, int]:
    """(input_size D, hidden_size H, output_size K, num_layers L) read off a parameter dict.

    Raises:
        ValueError: unknown cell, a missing key, or an array whose shape does not fit the rest.
    """
    gates = num_gates(cell)
    num_layers = sum(1 for key in params if key.startswith("weight_hh_l"))
    if num_layers == 0 or "head.weight" not in params:
        raise ValueError("params need weight_hh_l0 ... and head.weight (see engine.init_params)")
    gh, hidden = params["weight_hh_l0"].shape
    if gh != gates * hidden:
        raise ValueError(
            f"weight_hh_l0 has shape {params['weight_hh_l0'].shape}, expected "
            f"({gates}*H, H) for cell {cell!r}")
    input_size = params["weight_ih_l0"].shape[1]
    output_size = params["head.weight"].shape[0]
    for layer in range(num_layers):
        fan_in = input_size if layer == 0 else hidden
        expected = {f"weight_ih_l{layer}": (gh, fan_in), f"weight_hh_l{layer}": (gh, hidden),
                    f"bias_ih_l{layer}": (gh,), f"bias_hh_l{layer}": (gh,)}
        for key, shape in expected.items():
            if key not in params or params[key].shape != shape:
                got = params[key].shape if key in params else "missing"
                raise ValueError(f"{key}: expected shape {shape}, got {got}")
    if params["head.weight"].shape != (output_size, hidden):
        raise ValueError(f"head.weight: expected shape (K, {hidden}), got "
                         f"{params['head.weight'].shape}")
    return input_size, hidden, output_size, num_layers


def _random_orthogonal(rng: np.random.Generator, n: int) -> FloatArray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))  # sign fix: makes Q Haar-distributed


def _scale_factor(block: FloatArray, target: float) -> float:
    sigma_max = float(np.linalg.norm(block, 2))
    return 0.0 if sigma_max == 0 else target / sigma_max
