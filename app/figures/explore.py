"""Figures of the gradient-flow explorer (/explore)."""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures.common import (
    DIVERGING,
    PALETTE,
    SEQUENTIAL,
    Figure,
    base_layout,
    figure,
    finite_range,
    log10_or_nan,
    positive_or_none,
)
from gradient_flow_lab.app.simulation import Simulation

HUGE_STATE = 1e6  # |h| beyond this is coloured by log10|h|


def empty_note(values: np.ndarray) -> dict:
    """A note in the middle of a plot that has no finite value, saying why."""
    values = np.asarray(values, dtype=float)
    reason = ("every value is exactly 0" if np.all(values == 0) else
              "every value overflowed float64 (inf or nan)" if not np.isfinite(values).any()
              else "every value is 0 or overflowed")
    return dict(text=f"No finite value to draw: {reason}", xref="paper", yref="paper", x=0.5,
                y=0.5, showarrow=False, font=dict(size=13, color="#444444"),
                bgcolor="rgba(255,255,255,0.85)")


def grad_norm_figure(sim: Simulation) -> Figure:
    """||d loss / d h_t|| against t, log axis, a line per layer, the Pascanu bound over it."""
    steps = np.arange(sim.trace.seq_len)
    data = []
    for layer, norms in enumerate(sim.grad_norms):
        data.append(dict(type="scatter", 
            x=steps, y=positive_or_none(norms), mode="lines", name=f"layer {layer}",
            line=dict(width=2.5, color=PALETTE[layer % len(PALETTE)]),
            hovertemplate="t = %{x}<br>‖∂loss/∂h_t‖ = %{y:.3e}<extra>layer " f"{layer}</extra>"))
    if sim.bound_log10 is not None:
        data.append(dict(type="scatter", 
            # In log10 as computed (it can be 10^900, or exactly 0 behind a truncation cut):
            # drawn where it truly is, never at a stand-in level.
            x=steps, y=sim.bound_log10, mode="lines", meta={"log10": True, "sets_range": False},
            name="Pascanu bound (top layer): bₜ = gₜ + γσ_max·bₜ₊₁",
            line=dict(width=2, dash="dash", color="#000000"),
            hovertemplate="t = %{x}<br>bound = %{y:.3e}<extra></extra>"))
    layout = base_layout("Gradient norm ‖∂loss/∂hₜ‖ at each step", "time step t",
                         "‖∂loss/∂hₜ‖ (log)", log_y=True)
    return figure(data, layout)


def layer_time_heatmap(sim: Simulation) -> Figure:
    """Layers x time heatmap of log10 ||d loss / d h_t||."""
    values = log10_or_nan(sim.grad_norms)  # (L, T)
    data = [dict(type="heatmap", 
        # Numeric rows with tick labels: Plotly.js draws a heatmap with a categorical y axis
        # as an <image> of height NaN (a console error) in the browser.
        z=values, x=np.arange(sim.trace.seq_len), y=np.arange(len(values)),
        colorscale=SEQUENTIAL, colorbar=dict(title=dict(text="log₁₀"), thickness=12, nticks=5),
        hovertemplate="t = %{x}<br>layer %{y}<br>log₁₀‖∂loss/∂h‖ = %{z:.2f}<extra></extra>")]
    # At least ~110 px of plot: the colour bar is as tall as the plot, and its tick labels
    # overlapped on a one-layer network.
    layout = base_layout("log₁₀ gradient norm, layers × time", "time step t", "",
                         height=max(210, 120 + 50 * len(values)))
    layout["yaxis"].update(autorange="reversed", tickvals=list(range(len(values))),
                           ticktext=[f"layer {k}" for k in range(len(values))])
    layout["xaxis"].update(range=[-0.5, sim.trace.seq_len - 0.5])  # not -1..6 when all gaps
    if finite_range(values) is None:
        layout["annotations"] = [empty_note(sim.grad_norms)]
    return figure(data, layout)


def hidden_heatmap(sim: Simulation, layer: int = 0) -> Figure:
    """Units x time heatmaps of the hidden state h_t (sequence 0), one trace per layer; only
    ``layer``'s is visible, and the page switches between them without asking the server again.
    ``layout.meta.titles[k]`` is the title to show with layer k. Values are rounded to 5
    decimals: a colour cannot show more, and it halves the JSON of a deep, long network."""
    steps, units, values = sim.hidden_heatmap()
    layer = min(layer, len(values) - 1)
    hidden_size = sim.trace.hidden.shape[-1]
    note = ""
    if len(units) < hidden_size or len(steps) < sim.trace.seq_len:
        stride = int(steps[1] - steps[0]) if len(steps) > 1 else 1
        note = (f" ({len(units)} of {hidden_size} units, "
                + ("every step)" if stride == 1 else f"one step in {stride})"))
    titles = [f"Hidden state hₜ of layer {k}{note}" for k in range(len(values))]
    symmetric = sim.config.cell != "rnn" or sim.config.nonlinearity == "tanh"
    finite = values[np.isfinite(values)]
    largest = float(np.max(np.abs(finite))) if finite.size else 0.0
    if largest > HUGE_STATE:
        # An exploding state spans hundreds of decades: on a linear scale every cell would be
        # the same colour. Colour by log10|h| instead (0 is a gap), the true h in the hover.
        z, colorscale, zmid, title = log10_or_nan(values), SEQUENTIAL, None, "log₁₀|h|"
        hover = "t = %{x}<br>unit %{y}<br>log₁₀|h| = %{z:.2f}<extra>"
        titles = [f"{text}: coloured by log₁₀|hₜ| (it reaches {largest:.3g})"
                  for text in titles]
    else:
        z = values.copy()
        # Round only where rounding cannot overflow: x * 1e5 would turn 1e305 into inf.
        modest = np.abs(values) < 1e300  # False for nan and inf, which stay as they are
        z[modest] = np.round(values[modest], 5)
        colorscale = DIVERGING if symmetric else SEQUENTIAL
        zmid, title = (0 if symmetric else None), "h"
        hover = "t = %{x}<br>unit %{y}<br>h = %{z:.3f}<extra>"
    data = [dict(type="heatmap", name=f"layer {k}", visible=k == layer,
        z=z[k], x=steps, y=units, colorscale=colorscale, zmid=zmid,
        colorbar=dict(title=dict(text=title), thickness=12),
        hovertemplate=hover + f"layer {k}</extra>")
        for k in range(len(values))]
    layout = base_layout(titles[layer], "time step t", "unit", height=320)
    layout["meta"] = {"titles": titles, "layer": layer}
    return figure(data, layout)


def eigenvalue_figure(sim: Simulation) -> Figure:
    """Eigenvalues of each W_hh block in the complex plane, with the unit circle and, for an rnn,
    the 1/gamma circle (inside it the gradient must vanish whatever the inputs)."""
    angle = np.linspace(0, 2 * np.pi, 181)
    data = [dict(type="scatter", x=np.cos(angle), y=np.sin(angle), mode="lines", name="unit circle",
                       line=dict(color="#000000", width=1.5), hoverinfo="skip")]
    if sim.gamma is not None and sim.gamma != 1.0:
        radius = 1.0 / sim.gamma
        data.append(dict(type="scatter", x=radius * np.cos(angle), y=radius * np.sin(angle),
                         mode="lines",
                               name=f"1/γ = {radius:g} circle",
                               line=dict(color="#777777", width=1.5, dash="dot"),
                               hoverinfo="skip"))
    colour = 0
    for layer, blocks in enumerate(sim.spectra):
        for gate, spectrum in blocks.items():
            label = f"layer {layer}" + ("" if gate == "h" else f", W_h{gate}")
            data.append(dict(type="scatter", 
                x=spectrum.eigenvalues.real, y=spectrum.eigenvalues.imag, mode="markers",
                name=label, marker=dict(size=7, color=PALETTE[colour % len(PALETTE)],
                                        line=dict(width=0.5, color="#333333")),
                hovertemplate="λ = %{x:.3f} %{y:+.3f}i<extra>" + label + "</extra>"))
            colour += 1
    layout = base_layout("Eigenvalues of W_hh", "Re λ", "Im λ", height=360)
    layout["yaxis"].update(scaleanchor="x", scaleratio=1)
    return figure(data, layout)


def contribution_figure(sim: Simulation) -> Figure:
    """Each step's share of d loss / d W_hh (Frobenius norm): their sum is the BPTT gradient."""
    steps = np.arange(sim.trace.seq_len)
    data = []
    for layer, norms in enumerate(sim.contribution_norms):
        data.append(dict(type="bar", 
            x=steps, y=positive_or_none(norms), name=f"layer {layer}",
            marker=dict(color=PALETTE[layer % len(PALETTE)]),
            hovertemplate="t = %{x}<br>‖share of ∂loss/∂W_hh‖ = %{y:.3e}<extra></extra>"))
    clip = sim.clipping
    if clip["threshold"] is not None and clip["coef"] < 1.0:
        data.append(dict(type="scatter", 
            x=steps, y=positive_or_none(sim.contribution_norms[-1] * clip["coef"]),
            mode="lines", name="top layer after clipping", line=dict(color="#000000", width=2)))
    layout = base_layout("Per-step contributions to ∂loss/∂W_hh", "time step t",
                         "Frobenius norm (log)", log_y=True)
    layout["barmode"] = "group"
    return figure(data, layout)


def build(sim: Simulation) -> dict[str, Figure]:
    return {
        "grad_norms": grad_norm_figure(sim),
        "layer_heatmap": layer_time_heatmap(sim),
        "hidden_heatmap": hidden_heatmap(sim),
        "eigenvalues": eigenvalue_figure(sim),
        "contributions": contribution_figure(sim),
    }
