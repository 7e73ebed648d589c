"""Figures of an uploaded model's health report (plain Plotly dicts)."""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures.common import PALETTE, Figure, base_layout, figure
from gradient_flow_lab.engine.health import HORIZON_LEVEL, GateSaturation, GateSpectrum, Horizon


def _label(layer: int, gate: str) -> str:
    return f"layer {layer}" + ("" if gate == "h" else f" · {gate}")


def spectra_figure(spectra: list[GateSpectrum], gamma: float | None) -> Figure:
    """sigma_max and spectral radius of each gate block of W_hh, with the level 1 (and 1/gamma
    for an rnn whose gamma is not 1) drawn across."""
    labels = [_label(s.layer, s.gate) for s in spectra]
    data = [
        dict(type="bar", x=labels, y=[s.sigma_max for s in spectra], name="σ_max",
             marker=dict(color=PALETTE[0]),
             hovertemplate="%{x}<br>σ_max = %{y:.4g}<extra></extra>"),
        dict(type="bar", x=labels, y=[s.spectral_radius for s in spectra],
             name="spectral radius |λ|max", marker=dict(color=PALETTE[1]),
             hovertemplate="%{x}<br>|λ|max = %{y:.4g}<extra></extra>"),
    ]
    levels = [(1.0, "1")]
    if gamma is not None and gamma != 1.0:
        levels.append((1.0 / gamma, f"1/γ = {1.0 / gamma:g}"))
    for level, name in levels:
        data.append(dict(type="scatter", x=[labels[0], labels[-1]], y=[level, level],
                         mode="lines", name=name, line=dict(color="#000000", dash="dash",
                                                            width=1.5), hoverinfo="skip"))
    layout = base_layout("Recurrent weights W_hh: σ_max and spectral radius per gate block",
                         "layer · gate block", "value")
    layout["barmode"] = "group"
    return figure(data, layout)


def saturation_figure(saturation: list[GateSaturation]) -> Figure:
    """Share of time each sigmoid gate sits below 0.05 and above 0.95 (stacked)."""
    labels = [_label(s.layer, s.gate) for s in saturation]
    data = [
        dict(type="bar", x=labels, y=[100 * s.low for s in saturation], name="shut (< 0.05)",
             marker=dict(color=PALETTE[3]),
             hovertemplate="%{x}<br>%{y:.3g}% below 0.05<extra></extra>"),
        dict(type="bar", x=labels, y=[100 * s.high for s in saturation],
             name="open (> 0.95)" if saturation and saturation[0].gate != "h" else "|h| > 0.95",
             marker=dict(color=PALETTE[2]),
             hovertemplate="%{x}<br>%{y:.3g}% above 0.95<extra></extra>"),
    ]
    layout = base_layout("How often each gate is saturated on the inputs", "layer · gate",
                         "% of steps × units")
    layout["barmode"] = "stack"
    layout["yaxis"]["range"] = [0, 100]
    return figure(data, layout)


def horizon_figure(horizons: list[Horizon], seq_len: int) -> Figure:
    """||d h_{T-1} / d h_t|| against the distance T-1-t (log), the fitted per-step factor as a
    dashed line per layer, and the level 1e-3 that defines the horizon."""
    data = []
    far = 1
    for item in horizons:
        colour = PALETTE[item.layer % len(PALETTE)]
        distance = (seq_len - 1 - np.asarray(item.steps)).astype(float)
        far = max(far, int(distance.max()) if distance.size else 1)
        data.append(dict(type="scatter", x=distance, y=np.where(item.norms > 0, item.norms, 0.0),
                         mode="lines", name=f"layer {item.layer}",
                         line=dict(color=colour, width=2.5),
                         hovertemplate="T−1−t = %{x}<br>‖∂h_T−1/∂hₜ‖ = %{y:.3e}<extra>layer "
                                       f"{item.layer}</extra>"))
        if np.isfinite(item.factor) and item.factor > 0:
            usable = (distance >= 1) & np.isfinite(item.norms) & (item.norms > 0)
            if usable.sum() >= 2:
                slope, intercept = np.polyfit(distance[usable], np.log10(item.norms[usable]), 1)
                xs = np.array([0.0, float(distance.max())])
                data.append(dict(type="scatter", x=xs, y=intercept + slope * xs,
                                 meta={"log10": True, "sets_range": False}, mode="lines",
                                 name=f"layer {item.layer}: ×{item.factor:.3g} per step",
                                 line=dict(color=colour, dash="dash", width=1.5),
                                 hoverinfo="skip"))
    data.append(dict(type="scatter", x=[0, far], y=[np.log10(HORIZON_LEVEL)] * 2,
                     meta={"log10": True, "sets_range": False}, mode="lines",
                     name="10⁻³ (the horizon)", line=dict(color="#000000", dash="dot", width=1),
                     hoverinfo="skip"))
    layout = base_layout("How far back the gradient reaches: ‖∂h_T−1/∂hₜ‖ against steps back",
                         "steps back T−1−t", "‖∂h_T−1/∂hₜ‖ (log)", log_y=True)
    return figure(data, layout)
