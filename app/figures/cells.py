"""Figures and checks of the gated-cells page (/cells): what the gates do, what the cell state
holds, and how the gradient travels back along the carry (lstm's c, gru's z-gated copy of h).

Every figure shows one layer, the top one (where the loss enters), and sequence 0 of the batch
for the state pictures; the gradient norms are over the whole batch. ``view(config)`` is the
page's view builder (see ``app.views.view_builder``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gradient_flow_lab.app.figures.common import (
    DIVERGING,
    PALETTE,
    Figure,
    base_layout,
    figure,
    positive_or_none,
)
from gradient_flow_lab.app.simulation import (
    MAX_HEATMAP_STEPS,
    MAX_HEATMAP_UNITS,
    Simulation,
)

if TYPE_CHECKING:  # figures draw what a view computed; they never import views at run time
    from gradient_flow_lab.app.views.cells import CellDiagnostics

GATE_LABELS = {
    "i": "i  input gate", "f": "f  forget gate", "g": "g  candidate", "o": "o  output gate",
    "r": "r  reset gate", "z": "z  update (carry) gate", "n": "n  candidate",
}
GATE_RANGE = {"g": (-1.05, 1.05), "n": (-1.05, 1.05)}  # tanh; the rest are sigmoids in (0, 1)


# ---------------------------------------------------------------- figures


def stacked_axes(layout: dict, titles: list[str], gap: float) -> None:
    """Rows of panels sharing one time axis, set straight into ``layout`` (what make_subplots
    would build, without its per-property update machinery: 10x faster on every request)."""
    rows = len(titles)
    height = (1.0 - gap * (rows - 1)) / rows
    annotations = []
    for row, title in enumerate(titles):
        suffix = "" if row == 0 else str(row + 1)
        top = 1.0 - row * (height + gap)
        domain = [max(0.0, round(top - height, 6)), min(1.0, round(top, 6))]
        layout[f"yaxis{suffix}"] = dict(domain=domain, anchor=f"x{suffix}",
                                        zeroline=False, exponentformat="power")
        layout[f"xaxis{suffix}"] = dict(anchor=f"y{suffix}", zeroline=False,
                                        matches=None if row == 0 else "x",
                                        showticklabels=row == rows - 1)
        annotations.append(dict(text=title, x=0, xref="paper", xanchor="left", y=top,
                                yref="paper", yanchor="bottom", yshift=4, showarrow=False,
                                font=dict(size=12)))
    layout[f"xaxis{'' if rows == 1 else rows}"]["title"] = dict(text="time step t")
    layout["annotations"] = annotations


def _axes(row: int) -> dict:
    suffix = "" if row == 0 else str(row + 1)
    return dict(xaxis=f"x{suffix}", yaxis=f"y{suffix}")


def gates_figure(diag: CellDiagnostics) -> Figure:
    """Small multiples, one row per gate: the mean over units with the min-max band."""
    sim, layer = diag.sim, diag.layer
    names = list(sim.trace.gates)
    layout = base_layout(f"Gate activations, layer {layer}, sequence 0 "
                         "(line: mean over units; band: min to max)", "", "",
                         height=130 + 105 * len(names))
    layout["margin"] = dict(l=48, r=20, t=64, b=44)
    layout["showlegend"] = False
    stacked_axes(layout, [f"{GATE_LABELS[n]}: mean {diag.gate_mean[n][layer]:.4g}"
                          for n in names], gap=0.07)
    data = []
    for row, name in enumerate(names):
        values = sim.trace.gates[name][layer, :, 0]  # (T, H), sequence 0
        colour = PALETTE[row % len(PALETTE)]
        band = dict(mode="lines", line=dict(width=0, color=colour), hoverinfo="skip", **_axes(row))
        data.append(dict(type="scatter", x=diag.steps, y=values.max(axis=1), name=f"{name} max",
                         **band))
        data.append(dict(type="scatter", x=diag.steps, y=values.min(axis=1), name=f"{name} min",
                               fill="tonexty", fillcolor=_translucent(colour), **band))
        data.append(dict(type="scatter", 
            x=diag.steps, y=values.mean(axis=1), mode="lines", name=f"{name} mean over units",
            line=dict(width=2.5, color=colour), **_axes(row),
            hovertemplate=f"t = %{{x}}<br>mean {name} = %{{y:.5f}}<extra></extra>"))
        low, high = GATE_RANGE.get(name, (-0.05, 1.05))
        layout[f"yaxis{'' if row == 0 else row + 1}"].update(
            range=[low, high], tickvals=[-1, 0, 1] if low < 0 else [0, 0.5, 1])
    return figure(data, layout)


def state_figure(diag: CellDiagnostics) -> Figure:
    """Units x time heatmap of the carried state: c_t for lstm, h_t for gru (sequence 0)."""
    sim, layer = diag.sim, diag.layer
    lstm = sim.config.cell == "lstm"
    values = sim.trace.cell if lstm else sim.trace.hidden  # (L, T, B, H)
    T, H = values.shape[1], values.shape[3]
    steps = np.arange(0, T, max(1, -(-T // MAX_HEATMAP_STEPS)))
    units = np.arange(0, H, max(1, -(-H // MAX_HEATMAP_UNITS)))
    z = values[layer][steps][:, 0][:, units].T  # (units, steps)
    finite = np.abs(z[np.isfinite(z)])
    reach = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    symbol = "c" if lstm else "h"
    title = (f"Cell state cₜ of layer {layer}: the carried memory" if lstm
             else f"Hidden state hₜ of layer {layer}: gru carries h itself")
    if len(units) < H or len(steps) < T:
        stride = steps[1] - steps[0] if len(steps) > 1 else 1
        title += f" ({len(units)} of {H} units, one step in {stride})"
    data = [dict(type="heatmap", 
        z=z, x=steps, y=units, colorscale=DIVERGING, zmin=-reach, zmax=reach,
        colorbar=dict(title=dict(text=symbol), thickness=12),
        hovertemplate=f"t = %{{x}}<br>unit %{{y}}<br>{symbol} = %{{z:.4g}}<extra></extra>")]
    return figure(data, base_layout(title, "time step t", "unit", height=320))


def gradient_figure(diag: CellDiagnostics) -> Figure:
    """||dL/dc_t|| and ||dL/dh_t|| (lstm) or ||dL/dh_t|| (gru) against t, log axis."""
    sim, layer = diag.sim, diag.layer
    data = []
    if diag.grad_cell is not None:
        data.append(dict(type="scatter", 
            x=diag.steps, y=positive_or_none(diag.grad_cell[layer]), mode="lines",
            name="‖∂L/∂cₜ‖ (cell state)", line=dict(width=3, color=PALETTE[0]),
            hovertemplate="t = %{x}<br>‖∂L/∂c‖ = %{y:.4e}<extra></extra>"))
    hidden = positive_or_none(diag.grad_hidden[layer])
    # Markers too when the line is short or broken up: a lone point (weight_scale 0 leaves h a
    # gradient at T-1 only) is invisible as a line.
    isolated = np.isfinite(hidden).sum() < 3 or sim.trace.seq_len <= 60
    data.append(dict(type="scatter", 
        x=diag.steps, y=hidden, mode="lines+markers" if isolated else "lines",
        name="‖∂L/∂hₜ‖ (hidden state)", line=dict(width=2.5, color=PALETTE[3], dash="dash"),
        marker=dict(size=7 if np.isfinite(hidden).sum() < 3 else 4),
        hovertemplate="t = %{x}<br>‖∂L/∂h‖ = %{y:.4e}<extra></extra>"))
    title = (f"Gradient on the cell vs on the hidden state, layer {layer}"
             if diag.grad_cell is not None else f"Gradient ‖∂L/∂hₜ‖, layer {layer}")
    title += " (norms over batch and units)"
    return figure(data, base_layout(title, "time step t", "norm (log)", log_y=True))


def carry_figure(diag: CellDiagnostics) -> Figure:
    """Top: the gradient along the carry alone vs the full gradient of the carried state.
    Bottom: the carry gain (mean over units, min-max band) and sigma(b)^(T-1-t)."""
    sim, layer = diag.sim, diag.layer
    lstm = sim.config.cell == "lstm"
    state = "c" if lstm else "h"
    gate = diag.carry_name
    layout = base_layout(f"The carry path on its own, layer {layer}", "", "", height=560)
    layout["margin"] = dict(l=64, r=20, t=64, b=48)
    stacked_axes(layout, [f"‖∂L/∂{state}ₜ‖: carry path only vs all paths",
                          f"carry gain ∏ₛ₌ₜ₊₁ {gate}ₛ (mean over units)"], gap=0.14)
    layout["yaxis"].update(type="log", title=dict(text="norm (log)"))
    layout["yaxis2"].update(type="log", title=dict(text="gain (log)"))
    data = [
        dict(type="scatter", 
            x=diag.steps, y=positive_or_none(diag.grad_state[layer]), mode="lines",
            name=f"all paths ‖∂L/∂{state}ₜ‖", line=dict(width=2.5, color=PALETTE[1]),
            hovertemplate="t = %{x}<br>all paths = %{y:.4e}<extra></extra>", **_axes(0)),
        dict(type="scatter", 
            x=diag.steps, y=positive_or_none(diag.carry_path[layer]), mode="lines",
            name="carry path only (×f per step)" if lstm else "carry path only (×z per step)",
            line=dict(width=3, color=PALETTE[0], dash="dash"),
            hovertemplate="t = %{x}<br>carry only = %{y:.4e}<extra></extra>", **_axes(0)),
    ]
    colour = PALETTE[2]
    band = dict(mode="lines", line=dict(width=0, color=colour), hoverinfo="skip",
                showlegend=False, **_axes(1))
    data.append(dict(type="scatter", x=diag.steps, y=positive_or_none(diag.gain_max[layer]),
                           name="gain max over units", **band))
    data.append(dict(type="scatter", x=diag.steps, y=positive_or_none(diag.gain_min[layer]),
                           name="gain min over units", fill="tonexty",
                           fillcolor=_translucent(colour), **band))
    data.append(dict(type="scatter", 
        x=diag.steps, y=positive_or_none(diag.gain_mean[layer]), mode="lines",
        name="carry gain (band: min–max over units)", line=dict(width=3, color=colour),
        hovertemplate="t = %{x}<br>gain = %{y:.4e}<extra></extra>", **_axes(1)))
    reference = diag.reference()
    if reference is not None:
        label = (f"σ(b_f = {diag.bias:g})^(T−1−t)" if lstm else "σ(b_z = 0)^(T−1−t)")
        data.append(dict(type="scatter", 
            x=diag.steps, y=positive_or_none(reference), mode="lines", name=label,
            line=dict(width=2, color="#000000", dash="dot"),
            hovertemplate="t = %{x}<br>reference = %{y:.4e}<extra></extra>", **_axes(1)))
    return figure(data, layout)


def _translucent(hex_colour: str, alpha: float = 0.25) -> str:
    r, g, b = (int(hex_colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def build(sim: Simulation, diag: CellDiagnostics | None = None) -> dict[str, Figure]:
    diag = diag or CellDiagnostics(sim)
    # base_layout gives every figure the same fixed uirevision: zoom survives Plotly.react.
    return {"gates": gates_figure(diag), "state": state_figure(diag),
            "gradients": gradient_figure(diag), "carry": carry_figure(diag)}
