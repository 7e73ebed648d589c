"""Every figure the API sends is valid plotly: built fast without validation on the request
path (app.figures.common.figure), so it is validated here, once, by plotly.py itself."""

import copy
import pickle

import numpy as np
import plotly.graph_objects as go
import plotly.io
import pytest

from gradient_flow_lab.app import jsonsafe
from gradient_flow_lab.app.figures import train
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.views import activations, build_view


def assert_valid(name, fig):
    spec = figure_json(fig)
    try:
        go.Figure(spec)  # validates every property, raising on a misspelt or wrong one
    except (ValueError, TypeError) as error:
        pytest.fail(f"figure {name!r} is not valid plotly: {error}")
    assert spec["data"], f"figure {name!r} has no traces"


@pytest.mark.parametrize("view", ["explore", "bptt", "cells", "compare"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_view_figures_are_valid_plotly(view, cell):
    config = SimulationConfig(cell=cell, seq_len=30, num_layers=2, clip=1.0, truncation=7)
    for name, fig in build_view(config, view).figures.items():
        assert_valid(name, fig)


def test_activation_and_training_figures_are_valid_plotly():
    for name, fig in activations.build(12, 0.5).figures.items():
        assert_valid(name, fig)
    for name, fig in train.build(["rnn", "lstm"], False, 0.125, [0, 1, 2]).items():
        assert_valid(name, fig)


def test_figures_still_work_as_plotly_figures_in_a_notebook(monkeypatch):
    config = SimulationConfig(seq_len=20)
    fig = build_view(config, "explore").figures["grad_norms"]
    assert isinstance(fig.plotly, go.Figure)
    assert fig.to_dict()["data"][0]["type"] == "scatter"
    assert "<div" in fig.to_html(include_plotlyjs=False, full_html=False)
    # fig.show() hands plotly.io this figure, with its traces (here caught, not displayed)
    shown = []
    monkeypatch.setattr(plotly.io, "show", lambda figure, *a, **k: shown.append(figure))
    fig.show()
    assert len(shown) == 1 and shown[0].to_dict()["data"] == fig.to_dict()["data"]
    assert len(shown[0].data[0].y) == 20, "one point per step"


def test_a_figure_changed_with_plotly_py_is_sent_as_changed():
    fig = build_view(SimulationConfig(seq_len=20), "explore").figures["grad_norms"]
    assert figure_json(fig)["layout"]["title"]["text"].startswith("Gradient norm")
    fig.update_layout(title_text="my own title")
    assert figure_json(fig)["layout"]["title"]["text"] == "my own title"


def test_a_figure_survives_copy_and_pickle_and_looks_as_in_the_browser():
    fig = build_view(SimulationConfig(seq_len=20), "explore").figures["grad_norms"]
    sent = jsonsafe.to_strict(figure_json(fig))
    for twin in (copy.deepcopy(fig), pickle.loads(pickle.dumps(fig))):
        assert jsonsafe.to_strict(figure_json(twin)) == sent
    # plotly.py's default template draws a white grid, invisible on our white plot background:
    # the notebook figure uses no template, as the browser does.
    assert fig.layout.template.layout.to_plotly_json() == {}


def test_the_hidden_state_heatmap_holds_every_layer_and_keeps_huge_values_finite():
    config = SimulationConfig(weight_scale=10, seq_len=500, nonlinearity="relu", num_layers=2)
    result = build_view(config, "explore")
    spec, nonfinite = jsonsafe.to_strict(figure_json(result.figures["hidden_heatmap"]))
    assert [trace["visible"] for trace in spec["data"]] == [True, False]
    assert spec["layout"]["meta"]["titles"][1].startswith("Hidden state hₜ of layer 1")
    _, _, values = result.primary.hidden_heatmap()
    for layer, trace in enumerate(spec["data"]):
        nulls = sum(v is None for row in trace["z"] for v in row)
        bad = int((~np.isfinite(values[layer])).sum())
        # this state reaches 1e305: it is coloured by log10|h|, where an exact 0 is a gap too;
        # nothing finite and non-zero may turn into a null
        assert nulls == bad + int((values[layer] == 0).sum())
        assert nonfinite.get(f"data[{layer}].z", 0) == bad
        assert "log₁₀|h" in trace["colorbar"]["title"]["text"]
