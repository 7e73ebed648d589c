"""Properties of ``engine.run`` that hold for every cell, shape, seed and truncation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradient_flow_lab import engine
from tests.engine_helpers import CELL_CASE_IDS, CELL_CASES

# When a property fails, hypothesis's pytest plugin imports its patch writer (libcst), whose import
# raises a DeprecationWarning (mypy_extensions.TypedDict); under filterwarnings=error that becomes
# an INTERNALERROR that ends the session and hides the falsifying example. Import it once, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst or black not installed: the plugin then skips the patch
        pass

SETTINGS = settings(max_examples=25, deadline=None)
GATE_COUNT = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass
class Problem:
    cell: str
    nonlinearity: str
    params: dict
    inputs: np.ndarray  # (T, B, D)
    targets: np.ndarray  # (T, B)
    h0: object
    truncation: int | None
    seed: int

    @property
    def sizes(self):
        seq_len, batch, input_size = self.inputs.shape
        num_classes, hidden_size = self.params["head.weight"].shape
        num_layers = sum(key.startswith("weight_hh_l") for key in self.params)
        return seq_len, batch, input_size, hidden_size, num_classes, num_layers

    def run(self, **overrides):
        kwargs = dict(nonlinearity=self.nonlinearity, truncation=self.truncation, h0=self.h0)
        kwargs.update(overrides)
        targets = kwargs.pop("targets", self.targets)
        return engine.run(self.cell, self.params, self.inputs, targets, **kwargs)


@st.composite
def problems(draw):
    cell, nonlinearity = draw(st.sampled_from(CELL_CASES))
    seq_len = draw(st.integers(1, 8))
    batch = draw(st.integers(1, 3))
    input_size = draw(st.integers(1, 4))
    hidden_size = draw(st.integers(1, 5))
    num_classes = draw(st.integers(2, 4))
    num_layers = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    truncation = draw(st.one_of(st.none(), st.integers(1, 4)))
    init = draw(st.sampled_from(engine.INITS))
    params = engine.init_params(cell, input_size, hidden_size, num_classes, num_layers,
                                init=init, seed=seed)
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(seq_len, batch, input_size))
    targets = rng.integers(-1, num_classes, size=(seq_len, batch))  # -1: no loss at that step
    h0 = None
    if draw(st.booleans()):
        shape = (num_layers, batch, hidden_size)
        h0 = rng.normal(size=shape)
        if cell == "lstm":
            h0 = (h0, rng.normal(size=shape))
    return Problem(cell, nonlinearity, params, inputs, targets, h0, truncation, seed)


@SETTINGS
@given(problems())
def test_every_trace_field_has_its_documented_shape(problem):
    seq_len, batch, _, hidden_size, num_classes, num_layers = problem.sizes
    trace = problem.run()
    per_step = (num_layers, seq_len, batch, hidden_size)
    assert trace.step_loss.shape == (seq_len,)
    assert trace.logits.shape == (seq_len, batch, num_classes)
    assert trace.hidden.shape == per_step
    assert trace.grad_hidden.shape == per_step
    assert trace.grad_output.shape == per_step
    assert trace.grad_h_proj.shape == per_step[:-1] + (GATE_COUNT[problem.cell] * hidden_size,)
    assert trace.initial_hidden.shape == (num_layers, batch, hidden_size)
    assert trace.num_layers == num_layers and trace.seq_len == seq_len
    assert isinstance(trace.loss, float)
    if problem.cell == "lstm":
        assert trace.cell.shape == per_step and trace.grad_cell.shape == per_step
    else:
        assert trace.cell is None and trace.grad_cell is None
    assert set(trace.gates) == set(engine.GATE_NAMES[problem.cell]) - {"h"}
    for name, values in trace.gates.items():
        assert values.shape == per_step, name
    for array in (trace.step_loss, trace.logits, trace.hidden, trace.grad_hidden,
                  trace.grad_output, trace.grad_h_proj, *trace.grads.values()):
        assert array.dtype == np.float64
    # small random problems do not overflow
    assert trace.overflow_step is None and trace.grad_overflow_step is None


@SETTINGS
@given(problems())
def test_grads_have_exactly_the_params_keys_and_shapes(problem):
    trace = problem.run()
    assert list(trace.grads) == list(problem.params)
    for key, value in problem.params.items():
        assert trace.grads[key].shape == value.shape, key
        assert np.all(np.isfinite(trace.grads[key])), key


@SETTINGS
@given(problems())
def test_the_same_seed_gives_identical_arrays(problem):
    seq_len, batch, input_size, hidden_size, num_classes, num_layers = problem.sizes
    again = engine.init_params(problem.cell, input_size, hidden_size, num_classes, num_layers,
                               seed=problem.seed)
    twice = engine.init_params(problem.cell, input_size, hidden_size, num_classes, num_layers,
                               seed=problem.seed)
    assert all(np.array_equal(again[key], twice[key]) for key in again)
    first, second = problem.run(), problem.run()
    assert first.loss == second.loss
    for name in ("step_loss", "logits", "hidden", "grad_hidden", "grad_output", "grad_h_proj"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    for key in problem.params:
        assert np.array_equal(first.grads[key], second.grads[key]), key


@SETTINGS
@given(problems(), st.integers(0, 3))
def test_truncation_at_least_the_sequence_length_is_full_bptt(problem, extra):
    seq_len = problem.inputs.shape[0]
    full = problem.run(truncation=None)
    truncated = problem.run(truncation=seq_len + extra)
    assert np.array_equal(truncated.grad_hidden, full.grad_hidden)
    for key in problem.params:
        assert np.array_equal(truncated.grads[key], full.grads[key]), key


@SETTINGS
@given(problems())
def test_truncation_changes_gradients_but_never_the_forward_pass(problem):
    full = problem.run(truncation=None)
    truncated = problem.run()
    assert truncated.loss == full.loss
    assert np.array_equal(truncated.hidden, full.hidden)
    assert np.array_equal(truncated.logits, full.logits)


@SETTINGS
@given(problems())
def test_truncation_one_leaves_no_recurrent_gradient(problem):
    trace = problem.run(truncation=1)
    assert np.array_equal(trace.grad_hidden, trace.grad_output)
    if problem.cell == "lstm":
        # nothing flows back from c_{t+1} either: d loss/d c_t comes through h_t alone
        via_h = trace.grad_hidden * trace.gates["o"] * (1 - np.tanh(trace.cell) ** 2)
        np.testing.assert_allclose(trace.grad_cell, via_h, rtol=1e-12, atol=1e-300)


@SETTINGS
@given(problems())
def test_loss_is_the_cross_entropy_summed_over_steps(problem):
    trace = problem.run()
    logits = trace.logits  # (T, B, K)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    has_target = problem.targets >= 0
    picked = np.take_along_axis(log_softmax, np.maximum(problem.targets, 0)[..., None], -1)[..., 0]
    expected_step_loss = -np.where(has_target, picked, 0.0).sum(axis=1)  # (T,)
    np.testing.assert_allclose(trace.step_loss, expected_step_loss, rtol=1e-12, atol=1e-14)
    assert np.all(trace.step_loss[~has_target.any(axis=1)] == 0)
    assert trace.loss == float(trace.step_loss.sum())


@SETTINGS
@given(problems())
def test_no_targets_means_zero_loss_and_zero_gradients(problem):
    trace = problem.run(targets=np.full_like(problem.targets, -1))
    assert trace.loss == 0.0
    assert np.all(trace.step_loss == 0)
    assert np.all(trace.grad_hidden == 0)
    for key, grad in trace.grads.items():
        assert np.all(grad == 0), key


@SETTINGS
@given(problems(), st.booleans())
def test_run_leaves_the_params_and_inputs_untouched(problem, fortran_order):
    """A caller's dict must survive a run: the app reuses one params dict across requests.
    Fortran-ordered weights (e.g. a transposed array) are valid input too."""
    if fortran_order:
        problem.params = {key: np.asfortranarray(value) for key, value in problem.params.items()}
    params_before = {key: value.copy() for key, value in problem.params.items()}
    inputs_before = problem.inputs.copy()
    problem.run()
    assert np.array_equal(problem.inputs, inputs_before)
    for key, value in params_before.items():
        assert np.array_equal(problem.params[key], value), f"run() modified params[{key!r}]"


@pytest.mark.parametrize(("cell", "nonlinearity"), CELL_CASES, ids=CELL_CASE_IDS)
@pytest.mark.parametrize("hidden_size", [1, 3])
def test_a_second_identical_run_gives_the_same_loss(cell, nonlinearity, hidden_size):
    params = engine.init_params(cell, 2, hidden_size, 2, num_layers=2, seed=0)
    inputs = np.random.default_rng(0).normal(size=(4, 2, 2))
    targets = np.ones((4, 2), dtype=int)
    first = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity)
    second = engine.run(cell, params, inputs, targets, nonlinearity=nonlinearity)
    assert second.loss == first.loss
    assert np.array_equal(second.grad_hidden, first.grad_hidden)
