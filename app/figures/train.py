"""Figures of the training lab (/train): built empty here, then filled in the browser with
``Plotly.extendTraces`` as ``step`` events arrive."""

from __future__ import annotations

from gradient_flow_lab.app.figures.common import (
    CELL_COLOURS,
    SEQUENTIAL,
    Figure,
    base_layout,
    figure,
)


def loss_figure(cells: list[str], regression: bool) -> Figure:
    data = [dict(type="scatter", x=[], y=[], mode="lines", name=cell,
                       line=dict(color=CELL_COLOURS[cell], width=2.5)) for cell in cells]
    label = "squared error (log)" if regression else "cross-entropy (log)"
    layout = base_layout("Training loss", "training step", label, log_y=True)
    _readable_log_ticks(layout["yaxis"])
    return figure(data, layout)


def _readable_log_ticks(axis: dict) -> None:
    """Plotly's own log axis (these are filled in the browser): label every tick with its whole
    value ("0.3", "2"), never a bare minor digit ("3" under "1" meaning 0.3)."""
    axis["minorloglabels"] = "complete"


def accuracy_figure(cells: list[str], chance: float) -> Figure:
    data = [dict(type="scatter", x=[], y=[], mode="lines", name=cell,
                       line=dict(color=CELL_COLOURS[cell], width=2.5)) for cell in cells]
    layout = base_layout("Accuracy at the answer step", "training step", "accuracy")
    layout["yaxis"]["range"] = [0, 1.02]
    # above the curves: a model stuck at chance draws right on it, and must not hide it
    layout["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, y0=chance, y1=chance,
                             layer="above", line=dict(color="#000000", dash="dot", width=2))]
    layout["annotations"] = [dict(xref="paper", x=1, y=chance, yshift=10, xanchor="right",
                                  text=f"chance = {chance:.3g}", showarrow=False,
                                  bgcolor="rgba(255,255,255,0.85)")]
    return figure(data, layout)


def grad_norm_figure(cells: list[str]) -> Figure:
    data = []
    for cell in cells:
        data.append(dict(type="scatter", x=[], y=[], mode="lines", name=f"{cell} before clipping",
                               line=dict(color=CELL_COLOURS[cell], width=2)))
        data.append(dict(type="scatter", x=[], y=[], mode="lines", name=f"{cell} after",
                               line=dict(color=CELL_COLOURS[cell], width=2, dash="dot")))
    layout = base_layout("Gradient norm per update", "training step", "global norm (log)",
                         log_y=True)
    _readable_log_ticks(layout["yaxis"])
    return figure(data, layout)


def heatmap_figure(cell: str, time_steps: list[int]) -> Figure:
    """Training step x time step of log10 ||d loss / d h_t||: each update adds a row."""
    data = [dict(type="heatmap", z=[], x=time_steps, y=[], colorscale=SEQUENTIAL, zmin=-8, zmax=0,
                       colorbar=dict(title=dict(text="log₁₀"), thickness=12),
                       hovertemplate="step %{y}<br>t = %{x}<br>log₁₀‖∂loss/∂hₜ‖ = %{z:.2f}"
                                     "<extra>" + cell + "</extra>")]
    layout = base_layout(f"{cell}: how far back the gradient reaches, update by update",
                         "time step t in the sequence (the answer is at the right)",
                         "training step", height=300)
    return figure(data, layout)


def build(cells: list[str], regression: bool, chance: float, time_steps: list[int]
          ) -> dict[str, Figure]:
    figures = {"loss": loss_figure(cells, regression), "grad_norm": grad_norm_figure(cells)}
    if not regression:
        figures["accuracy"] = accuracy_figure(cells, chance)
    for cell in cells:
        figures[f"heatmap_{cell}"] = heatmap_figure(cell, time_steps)
    return figures
