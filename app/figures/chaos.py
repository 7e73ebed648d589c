"""Figures of the edge-of-chaos page (/chaos): the Lyapunov spectrum, the largest exponent as a
slope over the gradient-norm curve, the singular-value fan of the Jacobian product, and the
phase diagram of the largest exponent. Plain Plotly dicts; every input is NumPy.

Exponents are natural logs per step (nats per step); -inf is a true result (a direction mapped
exactly to 0) and is drawn as a marked "−∞", never as an overflow.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures.common import (
    DIVERGING,
    PALETTE,
    Figure,
    base_layout,
    decade_ticks,
    figure,
    positive_or_none,
)

LN10 = float(np.log(10.0))
MINUS_INFINITY = "−∞"
COLUMN_LABELS = {"input_scale": "input scale (std of the inputs)",
                 "forget_bias": "forget-gate bias"}


def exponent_text(value: float) -> str:
    """An exponent as the page writes it: '−0.0123', '−∞', or 'not a number'."""
    if np.isneginf(value):
        return MINUS_INFINITY
    if not np.isfinite(value):
        return "not a number"
    return f"{value:.3g}".replace("-", "−")


def rate_words(value: float) -> str:
    """'×0.951 per step, −0.0217 decades per step' for an exponent in nats per step."""
    if np.isneginf(value):
        return "×0 per step (−∞ decades per step)"
    if not np.isfinite(value):
        return "no rate (the run is not finite)"
    return (f"×{np.exp(value):.3g} per step, {value / LN10:+.3g} decades per step"
            .replace("-", "−"))


def _bottom_marks(minus_inf_x: list, layer: int, bottom: float) -> dict:
    return dict(type="scatter", x=minus_inf_x, y=[bottom] * len(minus_inf_x), mode="markers+text",
                text=[MINUS_INFINITY] * len(minus_inf_x), textposition="top center",
                name=f"layer {layer}: −∞ (a direction mapped to 0)",
                marker=dict(symbol="triangle-down", size=11, color=PALETTE[layer % len(PALETTE)]),
                hovertemplate="λ%{x} = −∞<extra>" + f"layer {layer}</extra>")


def spectrum_figure(exponents: np.ndarray, state_size: int, warmup: int, steps: int) -> Figure:
    """The top k exponents of each layer (L, k), sorted descending, with 0 marked; -inf drawn
    as a labelled marker at the foot of the plot."""
    L, k = exponents.shape
    index = np.arange(1, k + 1)
    finite = exponents[np.isfinite(exponents)]
    low = float(finite.min()) if finite.size else -1.0
    high = float(finite.max()) if finite.size else 1.0
    low, high = min(low, 0.0), max(high, 0.0)
    pad = max(0.05 * (high - low), 0.01)
    bottom = low - 3 * pad
    data = []
    for layer in range(L):
        row = exponents[layer]
        y = np.where(np.isfinite(row), row, np.nan)
        data.append(dict(type="scatter", x=index, y=[None if np.isnan(v) else float(v) for v in y],
                         mode="lines+markers", name=f"layer {layer}",
                         line=dict(width=2, color=PALETTE[layer % len(PALETTE)]),
                         marker=dict(size=6),
                         hovertemplate="λ%{x} = %{y:.4g} nats/step<extra>"
                                       f"layer {layer}</extra>"))
        dead = index[np.isneginf(row)].tolist()
        if dead:
            data.append(_bottom_marks(dead, layer, bottom))
    shown = "all" if k == state_size else f"the top {k} of {state_size}"
    layout = base_layout(f"Lyapunov spectrum: {shown} exponents per layer",
                         "exponent number i (sorted, largest first)",
                         "λᵢ (nats per step)", height=340)
    layout["yaxis"].update(range=[bottom - pad, high + 2 * pad], zeroline=False)
    layout["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=0, y1=0,
                             line=dict(color="#000000", width=2, dash="dash"))]
    layout["annotations"] = [dict(
        text="0: the edge of chaos", xref="paper", x=0.99, xanchor="right", yref="y", y=0,
        yanchor="bottom", showarrow=False, font=dict(size=12, color="#333333"))]
    layout["meta"] = {"warmup": warmup, "steps_averaged": steps}
    return figure(data, layout)


def slope_figure(grad_norms: np.ndarray, largest: float) -> Figure:
    """||d loss / d h_t|| of the top layer (T,) on a decade axis, with the line the largest
    exponent predicts: from the last step backwards, a factor e^λ₁ per step."""
    T = len(grad_norms)
    steps = np.arange(T)
    data = [dict(type="scatter", x=steps, y=positive_or_none(grad_norms), mode="lines",
                 name="‖∂loss/∂hₜ‖, top layer", line=dict(width=3, color=PALETTE[0]),
                 hovertemplate="t = %{x}<br>‖∂loss/∂hₜ‖ = %{y:.3e}<extra></extra>")]
    usable = np.flatnonzero(np.isfinite(grad_norms) & (grad_norms > 0))
    title = f"λ₁ = {exponent_text(largest)} nats/step: {rate_words(largest)}"
    if usable.size and np.isfinite(largest):
        anchor = int(usable[-1])  # the gradient nearest the loss that is a positive number
        with np.errstate(divide="ignore"):
            start = float(np.log10(grad_norms[anchor]))
        line = start + largest * (anchor - steps) / LN10  # going back: e^λ₁ per step
        data.append(dict(type="scatter", x=steps, y=line, mode="lines",
                         meta={"log10": True, "sets_range": False},
                         name=f"slope λ₁ = {exponent_text(largest)} per step",
                         line=dict(width=2.5, dash="dash", color="#000000"),
                         hovertemplate="t = %{x}<br>e^(λ₁ (t₀ − t)) line = %{y:.3e}"
                                       "<extra></extra>"))
    layout = base_layout(title, "time step t", "‖∂loss/∂hₜ‖ (log)", log_y=True, height=340)
    return figure(data, layout)


def fan_figure(steps: np.ndarray, log_values: np.ndarray, largest: float,
               seq_len: int) -> Figure:
    """Every singular value of d h_{T-1} / d h_t against t, from natural logs (n, H) (never
    overflowing), drawn as log10 on a decade axis; -inf (an exact 0) is left out and counted."""
    log10 = log_values / LN10  # (n, H)
    n, H = log10.shape
    x: list = []
    y: list = []
    for unit in range(H):  # one trace for all: each singular value's line, None between them
        column = log10[:, unit]
        x += steps.tolist() + [None]
        y += [float(v) if np.isfinite(v) else None for v in column] + [None]
    data = [dict(type="scatter", x=x, y=y, mode="lines", name=f"all {H} singular values",
                 line=dict(width=1, color="rgba(86,180,233,0.7)"), connectgaps=False,
                 hovertemplate="t = %{x}<br>log₁₀ σ = %{y:.3f}<extra></extra>")]
    for unit, name, colour in ((0, "largest σ₁", PALETTE[3]), (H - 1, "smallest σ_H", PALETTE[0])):
        column = log10[:, unit]
        data.append(dict(type="scatter", x=steps, y=[float(v) if np.isfinite(v) else None
                                                      for v in column],
                         mode="lines", name=name, line=dict(width=3, color=colour),
                         hovertemplate="t = %{x}<br>log₁₀ σ = %{y:.3f}<extra>" f"{name}</extra>"))
    finite = log10[np.isfinite(log10)]
    if np.isfinite(largest):
        reference = largest * (seq_len - 1 - steps) / LN10
        data.append(dict(type="scatter", x=steps, y=reference, mode="lines",
                         name="e^(λ₁ (T−1−t))", line=dict(width=2, dash="dash", color="#000000"),
                         hovertemplate="t = %{x}<br>log₁₀ e^(λ₁(T−1−t)) = %{y:.3f}"
                                       "<extra></extra>"))
    layout = base_layout("Singular values of the Jacobian product ∂h_T−1/∂hₜ",
                         "time step t", "σ (log)", height=360)
    annotations = []
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        pad = max(0.25, 0.06 * (high - low))
        ticks, labels = decade_ticks(low - pad, high + pad)
        layout["yaxis"].update(type="linear", range=[low - pad, high + pad], tickmode="array",
                               tickvals=ticks, ticktext=labels, autorange=False)
    zeros = int(np.isneginf(log10).sum())
    if zeros:
        annotations.append(dict(
            text=f"{zeros} of {n * H} values are exactly 0 (log = −∞): left out", xref="paper",
            x=0.99, xanchor="right", yref="paper", y=0.0, yanchor="bottom", showarrow=False,
            font=dict(size=12, color="#444444"), bgcolor="rgba(255,255,255,0.85)"))
    if annotations:
        layout["annotations"] = annotations
    return figure(data, layout)


COLOUR_SOFTNESS = 0.02  # nats per step: where the phase map's colours stop growing linearly


def _mix(colour: str, share: float) -> str:
    """``colour`` (#RRGGBB) mixed with white: share 0 is white, 1 the colour."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "rgb({},{},{})".format(*(round(255 + (c - 255) * share) for c in rgb))


def _bar_ticks(reach: float) -> list[float]:
    """Ticks on both sides of 0: 0, ±reach and one or two round values between."""
    inner = [v for v in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0) if v < 0.8 * reach][-2:]
    return [-reach, *(-v for v in reversed(inner)), 0.0, *inner, reach]


def diverging_scale(reach: float, stops: int = 10) -> list[list]:
    """A blue-white-red colour scale for values in [−reach, reach], white at 0, the colour's
    strength growing like asinh(|λ| / COLOUR_SOFTNESS) (stops per side)."""
    top = np.arcsinh(reach / COLOUR_SOFTNESS)
    scale = []
    for strength in np.linspace(-1.0, 1.0, 2 * stops + 1):
        value = np.sinh(abs(strength) * top) * COLOUR_SOFTNESS * np.sign(strength)
        colour = DIVERGING[0][1] if strength < 0 else DIVERGING[-1][1]
        scale.append([float((value + reach) / (2 * reach)), _mix(colour, abs(float(strength)))])
    scale[0][0], scale[-1][0] = 0.0, 1.0
    return scale


def phase_figure(weight_scales: np.ndarray, columns: np.ndarray, column: str,
                 grid: np.ndarray, current: tuple[float, float], grid_steps: int,
                 rows_done: int | None = None) -> Figure:
    """Heatmap of the largest exponent over weight scale (rows) x ``column`` (columns), with
    the zero contour and the current setting marked. ``grid`` (R, C) may hold nan for rows not
    computed yet (``rows_done`` of R), and -inf (drawn at the colour scale's foot, "−∞" in the
    hover)."""
    R, C = grid.shape
    done = R if rows_done is None else rows_done
    finite = grid[np.isfinite(grid)]
    # Symmetric around 0 (white), spanning the data: the colour bar reaches the largest |λ₁| on
    # both sides, so a map that is half positive shows a bar that is half positive too. The
    # colours are spread like asinh(λ / COLOUR_SOFTNESS), so a slightly chaotic cell (λ₁ = 0.05
    # next to −2.6) is still visibly red.
    reach = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 0.05)
    low, high = -reach, reach
    colorscale = diverging_scale(reach)
    z: list = []
    text: list = []
    for row in range(R):
        z_row, text_row = [], []
        for value in grid[row]:
            if row >= done:
                z_row.append(None)
                text_row.append("not computed yet")
            elif np.isneginf(value):
                z_row.append(low)
                text_row.append(MINUS_INFINITY)
            elif np.isfinite(value):
                z_row.append(float(value))
                text_row.append(f"{value:.3g}".replace("-", "−"))
            else:
                z_row.append(None)
                text_row.append("not a number (overflow)")
        z.append(z_row)
        text.append(text_row)
    label = COLUMN_LABELS[column]
    x, y = columns.tolist(), weight_scales.tolist()
    data = [dict(type="heatmap", x=x, y=y, z=z, customdata=text, colorscale=colorscale,
                 zmin=low, zmax=high, name="λ₁",
                 colorbar=dict(title=dict(text="λ₁ (nats/step)"), thickness=14,
                               tickvals=_bar_ticks(reach),
                               ticktext=[f"{v:.2g}".replace("-", "−") for v in _bar_ticks(reach)]),
                 hovertemplate=f"{label} = %{{x:.3g}}<br>weight scale = %{{y:.3g}}<br>"
                               "λ₁ = %{customdata}<extra></extra>")]
    if done >= 2 and finite.size and finite.min() < 0 < finite.max():
        data.append(dict(type="contour", x=x, y=y[:done], z=z[:done], showscale=False,
                         contours=dict(start=0, end=0, size=1, coloring="none"),
                         line=dict(color="#000000", width=3), name="λ₁ = 0 (edge of chaos)",
                         showlegend=True, hoverinfo="skip"))
    data.append(dict(type="scatter", x=[current[0]], y=[current[1]], mode="markers",
                     name="this network",
                     marker=dict(symbol="x", size=16, color="#000000",
                                 line=dict(width=2, color="#FFFFFF")),
                     hovertemplate=f"this network<br>{label} = %{{x:.3g}}<br>"
                                   "weight scale = %{y:.3g}<extra></extra>"))
    filling = "" if done >= R else f" (filling in: {done} of {R} rows)"
    layout = base_layout(f"Largest exponent λ₁ over weight scale × {label}{filling}",
                         label, "weight scale (σ_max of W_hh)", height=400)
    step_x = (x[-1] - x[0]) / max(C - 1, 1) / 2
    step_y = (y[-1] - y[0]) / max(R - 1, 1) / 2
    layout["xaxis"].update(range=[x[0] - step_x, x[-1] + step_x])
    layout["yaxis"].update(range=[y[0] - step_y, y[-1] + step_y])
    layout["meta"] = {"column": column, "rows_done": done, "rows": R, "grid_steps": grid_steps}
    return figure(data, layout)


def build(*, exponents: np.ndarray, state_size: int, warmup: int, steps_averaged: int,
          grad_norms: np.ndarray, largest: float, fan_steps: np.ndarray,
          fan_log_values: np.ndarray, seq_len: int, phases: dict[str, dict]) -> dict[str, Figure]:
    figures = {
        "spectrum": spectrum_figure(exponents, state_size, warmup, steps_averaged),
        "slope": slope_figure(grad_norms, largest),
        "fan": fan_figure(fan_steps, fan_log_values, largest, seq_len),
    }
    for column, phase in phases.items():
        figures[f"phase_{column}"] = phase_figure(
            phase["weight_scales"], phase["columns"], column, phase["grid"], phase["current"],
            phase["grid_steps"])
    return figures
