"""What the lecture pages promise, checked without a browser: the training lab's log axes label
whole values, its chance line sits over the curves, and the BPTT page's per-step factor is
||d h_t / d h_(t-1)||."""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures import train
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import simulate
from gradient_flow_lab.app.views import bptt
from gradient_flow_lab.engine.diagnostics import step_jacobian_norms


def test_training_log_axes_never_show_bare_minor_digits():
    figures = train.build(["rnn", "lstm"], False, 0.125, [0, 1, 2])
    for name in ("loss", "grad_norm"):
        axis = figures[name].layout["yaxis"]
        assert axis["type"] == "log" and axis["minorloglabels"] == "complete", name


def test_the_chance_line_is_drawn_over_the_curves():
    layout = train.build(["rnn"], False, 0.125, [0, 1])["accuracy"].layout
    (line,) = layout["shapes"]
    assert line["layer"] == "above" and line["y0"] == 0.125


def test_step_factor_is_the_norm_of_one_step_jacobian():
    """For a tanh RNN, J_t = diag(1 - h_t^2) W_hh: its spectral norm, step by step."""
    sim = simulate(SimulationConfig(cell="rnn", seq_len=12, hidden_size=6, weight_scale=1.3))
    factors = step_jacobian_norms(sim.trace, 0)
    assert np.isnan(factors[0])
    h = sim.trace.hidden[0, :, 0, :]  # (T, H)
    weight = sim.trace.params["weight_hh_l0"]
    for t in range(1, 12):
        expected = np.linalg.norm((1 - h[t] ** 2)[:, None] * weight, 2)
        assert np.isclose(factors[t], expected, rtol=1e-10), t


def test_bptt_view_sends_the_factor_of_every_step():
    result = bptt.view(SimulationConfig(seq_len=20, loss_at="all", truncation=5))
    factors = result.series["step_factors"]
    assert len(factors) == 20 and factors[0] is None
    assert all(isinstance(v, float) and v > 0 for v in factors[1:])
    assert "factors" in result.figures
