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


def figure(data: list, layout: dict) -> go.Figure:
    # Skip plotly.py's per-property validation: it triples the build time of a 64x300 heatmap.
    return go.Figure(data=data, layout=layout, skip_invalid=False)


def positive_or_none(values: np.ndarray) -> np.ndarray:
    """For log axes: zeros (no gradient at all, e.g. beyond a truncation boundary) become NaN so
    Plotly leaves a gap instead of failing; the JSON boundary turns NaN into null."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def log10_or_nan(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(values, dtype=float))
    return np.where(np.isfinite(out), out, np.nan)
