"""Shared look: the Okabe-Ito colour-blind-safe palette, fonts, log axes with exponent labels."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
CELL_COLOURS = {"rnn": "#D55E00", "lstm": "#0072B2", "gru": "#009E73"}
# Diverging blue-white-vermillion for signed values, sequential viridis for magnitudes.
DIVERGING = [[0.0, "#0072B2"], [0.5, "#FFFFFF"], [1.0, "#D55E00"]]
SEQUENTIAL = "Viridis"
UIREVISION = "keep"  # a fixed uirevision: Plotly.react keeps the user's zoom across updates


def base_layout(title: str, x_title: str, y_title: str, *, log_y: bool = False,
                height: int = 340) -> dict:
    return dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        xaxis=dict(title=dict(text=x_title), zeroline=False),
        yaxis=dict(title=dict(text=y_title), type="log" if log_y else "linear",
                   exponentformat="power", zeroline=False),
        height=height,
        margin=dict(l=64, r=20, t=44, b=48),
        legend=dict(orientation="h", y=-0.22, x=0),
        font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#FFFFFF",
        uirevision=UIREVISION,
        colorway=list(PALETTE),
    )


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A plotly.py figure (``fig.show()`` works in a notebook) from plain trace dicts.

    Built without plotly.py's per-property validation, and keeping the dicts it was made from:
    on the request path, validation and ``to_plotly_json``'s deep copy cost several times more
    than the whole simulation (measured 96 ms against 26 ms for the explore figures). The tests
    validate every figure once with plotly.py instead (tests/test_figures.py).
    """
    fig = go.Figure(data=data, layout=layout, _validate=False)
    fig._gfl_spec = {"data": data, "layout": layout}
    return fig


def figure_json(fig: go.Figure) -> dict:
    """The figure as plain data for the JSON boundary (which nulls and reports non-finite
    values); the builder's own dicts when the figure came from ``figure``."""
    spec = getattr(fig, "_gfl_spec", None)
    return spec if spec is not None else fig.to_plotly_json()


def positive_or_none(values: np.ndarray) -> np.ndarray:
    """For log axes: zeros (no gradient at all, e.g. beyond a truncation boundary) become NaN so
    Plotly leaves a gap instead of failing; the JSON boundary turns NaN into null."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def log10_or_nan(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(values, dtype=float))
    return np.where(np.isfinite(out), out, np.nan)
