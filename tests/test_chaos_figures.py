"""The /chaos figures are valid plotly (built without validation on the request path), for every
cell, including the partial phase diagrams the stream sends while the grid fills in."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from gradient_flow_lab.app.figures import chaos as figures
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.views import build_view


def assert_valid(name, fig):
    spec = figure_json(fig)
    try:
        go.Figure(spec)
    except (ValueError, TypeError) as error:
        pytest.fail(f"figure {name!r} is not valid plotly: {error}")
    assert spec["data"], f"figure {name!r} has no traces"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_chaos_figures_are_valid_plotly(cell):
    config = SimulationConfig(cell=cell, seq_len=30, num_layers=2, hidden_size=8)
    for name, fig in build_view(config, "chaos").figures.items():
        assert_valid(name, fig)


def test_a_half_filled_phase_diagram_with_minus_infinity_is_valid_and_says_so():
    grid = np.full((3, 4), np.nan)
    grid[0] = [-0.5, -np.inf, 0.2, 0.1]
    grid[1] = [-0.1, 0.0, 0.3, np.nan]  # nan: an overflowed point
    fig = figures.phase_figure(np.array([0.5, 1.0, 2.0]), np.array([0.0, 1, 2, 3]),
                               "input_scale", grid, (1.0, 1.0), 50, rows_done=2)
    assert_valid("phase", fig)
    heatmap = figure_json(fig)["data"][0]
    assert heatmap["customdata"][0][1] == "−∞"
    assert heatmap["customdata"][1][3].startswith("not a number")
    assert heatmap["customdata"][2] == ["not computed yet"] * 4
    assert heatmap["z"][2] == [None] * 4
    assert "filling in: 2 of 3 rows" in figure_json(fig)["layout"]["title"]["text"]


def test_the_slope_line_falls_by_lambda_per_step_back_from_the_last_step():
    norms = np.exp(-0.3 * (49 - np.arange(50)))  # exactly e^(λ (T-1-t)) with λ = -0.3
    spec = figure_json(figures.slope_figure(norms, -0.3))
    curve, line = spec["data"][0]["y"], spec["data"][1]["y"]
    np.testing.assert_allclose(line, curve, atol=1e-9)  # both log10 on the decade axis
    assert "×0.741 per step" in spec["layout"]["title"]["text"]
    assert "−0.13 decades per step" in spec["layout"]["title"]["text"]
