"""Figures of the comparison page (/compare): rnn, lstm and gru on the same input.

Every cell runs with the page's configuration and the same seed, so the inputs and targets are
identical (the weights differ in shape, so they cannot be shared). The rnn run is the primary one:
its backward sweep is what the stream sends while the page waits.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures.common import (
    CELL_COLOURS,
    Figure,
    base_layout,
    figure,
    log10_or_nan,
    positive_or_none,
)
from gradient_flow_lab.app.simulation import Simulation


def grad_norm_figure(sims: dict[str, Simulation]) -> Figure:
    """||d loss / d h_t|| (top layer) against t, one line per cell; the lstm's cell-state
    gradient ||d loss / d c_t|| dashed, since that is the path that carries it far back."""
    data = []
    for cell, sim in sims.items():
        steps = np.arange(sim.trace.seq_len)
        data.append(dict(type="scatter", 
            x=steps, y=positive_or_none(sim.grad_norms[-1]), mode="lines", name=cell,
            line=dict(color=CELL_COLOURS[cell], width=2.5),
            hovertemplate="t = %{x}<br>‖∂loss/∂h_t‖ = %{y:.3e}<extra>" + cell + "</extra>"))
        cell_norms = engine.cell_grad_norms(sim.trace)  # (L, T) for lstm, else None
        if cell_norms is not None:
            data.append(dict(type="scatter", 
                x=steps, y=positive_or_none(cell_norms[-1]), mode="lines",
                name=f"{cell} cell state ‖∂loss/∂cₜ‖",
                line=dict(color=CELL_COLOURS[cell], width=1.5, dash="dot"),
                hovertemplate="t = %{x}<br>‖∂loss/∂c_t‖ = %{y:.3e}<extra>" + cell
                + " cell state</extra>"))
    layout = base_layout("Gradient norm ‖∂loss/∂hₜ‖ at each step, per cell (top layer)",
                         "time step t", "‖∂loss/∂hₜ‖ (log)", log_y=True, height=380)
    return figure(data, layout)


def retention_figure(sims: dict[str, Simulation]) -> Figure:
    """A bar per cell hanging down from 0: log10 of ||d loss / d h_0|| / ||d loss / d h_{T-1}||,
    the orders of magnitude the gradient loses between the last step and the first (bars on a
    log axis would start at an arbitrary floor and mislead)."""
    cells = list(sims)
    ratios = np.array([engine.retention(sims[cell].grad_norms[-1]) for cell in cells])
    # An exact 0 (truncation cut the path) has no bar and says so; a ratio that is not a number
    # (overflow) is a reported gap.
    orders = log10_or_nan(ratios)
    labels = [f"{r:.2e}" if np.isfinite(r) and r > 0 else "0: nothing left" if r == 0
              else "not a number (overflow)" for r in ratios]
    data = [dict(type="bar", 
        x=cells, y=orders, text=labels, textposition="outside", cliponaxis=False,
        marker=dict(color=[CELL_COLOURS[cell] for cell in cells]), name="first / last",
        customdata=ratios,
        hovertemplate="%{x}: ‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖ = %{customdata:.3e}<extra></extra>")]
    layout = base_layout("Gradient left at t = 0, relative to the last step", "cell",
                         "log₁₀(first / last)", height=340)
    layout["showlegend"] = False
    layout["yaxis"]["zeroline"] = True
    layout["yaxis"]["zerolinecolor"] = "#555555"
    return figure(data, layout)
