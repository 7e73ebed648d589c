"""GET /api/activations: strict JSON, the slope ceilings, the chain products and 422s."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_flow_lab.app.views import activations as activations_view
from gradient_flow_lab.engine import compose
from tests.strict_json import strict_json, strict_loads


def get_document(client, **params) -> dict:
    response = client.get("/api/activations", params=params)
    assert response.headers["content-type"].startswith("application/json")
    return strict_json(response)


def test_default_request_is_strict_json_with_every_figure(client):
    document = get_document(client)
    assert document["query"] == {"depth": 10, "x0": 0.5}
    assert set(document["figures"]) == {"curves", "iterates", "chain", "spread"}
    for name, fig in document["figures"].items():
        assert fig["data"], f"figure {name} has no traces"
        assert "layout" in fig
    assert document["nonfinite"] == {}


def test_reported_slope_maxima_are_a_quarter_and_one(client):
    summary = get_document(client)["summary"]
    assert summary["sigmoid_grad_max"] == 0.25
    assert summary["tanh_grad_max"] == 1.0
    # The curves figure annotates the same maxima.
    notes = " ".join(a["text"] for a in get_document(client)["figures"]["curves"]["layout"]
                     ["annotations"])
    assert "sigmoid′ max = 0.25" in notes and "tanh′ max = 1" in notes


@pytest.mark.parametrize("depth", [0, 1, 10, 30, 50])
@pytest.mark.parametrize("x0", [-5.0, -0.7, 0.0, 0.5, 5.0])
def test_sigmoid_product_never_beats_a_quarter_to_the_n(client, depth, x0):
    chains = get_document(client, depth=depth, x0=x0)["summary"]["chains"]
    sigmoid, tanh = chains["sigmoid"], chains["tanh"]
    assert sigmoid["best_case"] == pytest.approx(0.25**depth, rel=1e-15)
    assert 0.0 < sigmoid["grad_product"] <= 0.25**depth * (1 + 1e-12)
    assert 0.0 < tanh["grad_product"] <= 1.0
    assert tanh["best_case"] == 1.0


def test_tiny_products_stay_numbers_not_null(client):
    """0.25^50 = 7.9e-31: far from overflow, it must arrive as a number, not as null or 0."""
    document = get_document(client, depth=50, x0=0.5)
    sigmoid = document["summary"]["chains"]["sigmoid"]
    assert sigmoid["best_case"] == pytest.approx(7.888609052210118e-31)
    expected = compose("sigmoid", np.array([0.5]), 50)[1][50, 0]
    assert sigmoid["grad_product"] == pytest.approx(expected, rel=1e-12)
    assert 1e-40 < sigmoid["grad_product"] < 1e-30
    chain = document["figures"]["chain"]["data"]
    best = next(trace for trace in chain if trace["name"].startswith("sigmoid best case"))
    assert best["y"][-1] == pytest.approx(np.log10(0.25**50))  # drawn on a decade axis
    assert best["customdata"][-1][1] == pytest.approx(0.25**50)  # the true value, for hover and CSV
    assert all(isinstance(y, float) for y in best["y"])


def test_sigmoid_iterates_flatten_onto_the_fixed_point(client):
    document = get_document(client, depth=50)
    fixed = document["summary"]["sigmoid_fixed_point"]
    assert fixed == pytest.approx(1 / (1 + np.exp(-fixed)), abs=1e-12)
    assert fixed == pytest.approx(0.659046, abs=1e-6)
    iterates = document["figures"]["iterates"]["data"]
    sigmoid = next(t for t in iterates if t["name"].startswith("sigmoidⁿ"))
    tanh = next(t for t in iterates if t["name"].startswith("tanhⁿ"))
    assert np.ptp(sigmoid["y"]) < 1e-12  # flat: the start is forgotten
    assert np.ptp(tanh["y"]) > 0.1  # tanh^50 still depends on the start
    assert max(abs(y) for y in tanh["y"]) < 0.25  # ... but has shrunk towards 0


def test_chain_figure_has_one_point_per_step(client):
    chain = get_document(client, depth=30, x0=-1.2)["figures"]["chain"]["data"]
    for trace in chain:
        assert trace["x"] == list(range(31))


@pytest.mark.parametrize(("query", "field", "words"), [
    ("depth=51", "depth", "less than or equal to 50"),
    ("depth=-1", "depth", "greater than or equal to 0"),
    ("depth=2.5", "depth", "integer"),
    ("x0=abc", "x0", "valid number"),
    ("x0=5.5", "x0", "less than or equal to 5"),
    ("x0=nan", "x0", "finite"),
    ("x0=inf", "x0", "finite"),
])
def test_out_of_range_is_a_422_naming_the_field(client, query, field, words):
    response = client.get(f"/api/activations?{query}")
    assert response.status_code == 422, response.text
    details = strict_loads(response.text)["detail"]
    assert [d["field"] for d in details] == [field]
    assert words in details[0]["msg"]


def test_figures_build_outside_the_app():
    """The figures are plain plotly.py objects, usable from a notebook."""
    result = activations_view.build(5, 0.5)
    assert set(result.figures) == {"curves", "iterates", "chain", "spread"}
    # a decade axis: log10 values on a linear axis, labelled in powers of ten
    axis = result.figures["chain"].layout.yaxis
    assert axis.type == "linear"
    assert all(t == "1" or t.startswith(("10", "2", "5")) for t in axis.ticktext)
