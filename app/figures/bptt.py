"""Figures of the BPTT page (/bptt): full backpropagation through time against truncated BPTT.

The page's configuration runs with full BPTT and, when its truncation k is not 0, truncated to
chunks of k steps on the same weights and data. With k = None (truncation 0) only full BPTT is
drawn: no cut lines, no truncated curve or panel.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures.common import (
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

MAX_COLUMNS = 60  # the unrolled network shows at most this many time steps
FULL_COLOUR, TRUNCATED_COLOUR = PALETTE[0], PALETTE[3]  # blue, vermillion


def unrolled_columns(seq_len: int, max_columns: int = MAX_COLUMNS) -> np.ndarray:
    """The time steps drawn as columns: all of them, or ``max_columns`` spread evenly with the
    first and last always included. Integer arithmetic (floor(i (T-1) / (n-1))), so the page's
    script picks exactly the same steps for its placeholder while the stream runs."""
    count = min(seq_len, max_columns)
    if count == 1:
        return np.zeros(1, dtype=int)
    return (np.arange(count) * (seq_len - 1)) // (count - 1)


def chunk_starts(seq_len: int, k: int | None) -> np.ndarray:
    """Steps where truncated BPTT cuts the gradient (no flow from t back to t - 1), t > 0;
    none for full BPTT (k None)."""
    if k is None:
        return np.zeros(0, dtype=int)
    return np.arange(k, seq_len, k)














def unrolled_figure(full: Simulation, k: int | None) -> Figure:
    """The network unrolled in time: a node per (layer, step), coloured by log10 ||d loss / d h_t||
    of full BPTT; a loss node above every step that has a target; dashed lines where truncated
    BPTT (chunks of k) cuts the backward flow."""
    trace = full.trace
    T, L = trace.seq_len, trace.num_layers
    columns = unrolled_columns(T)
    n = len(columns)
    norms = full.grad_norms[:, columns]  # (L, n)
    colour = log10_or_nan(norms)
    xs = np.tile(columns, L)  # (L * n,) layer-major: node index = layer * n + column index
    ys = np.repeat(np.arange(L), n)
    size = float(np.clip(520 / max(n, 1), 8, 24))

    has_loss = (trace.targets[columns] >= 0).any(axis=1)  # (n,)
    edge_x, edge_y = [], []
    for layer in range(L):  # recurrent edges h_{t-1} -> h_t
        for a, b in zip(columns[:-1], columns[1:], strict=True):
            edge_x += [a, b, None]
            edge_y += [layer, layer, None]
    for step, loss_here in zip(columns, has_loss, strict=True):  # input -> ... -> top (-> loss)
        edge_x += [step, step, None]
        edge_y += [-1, L if loss_here else L - 1, None]

    data = [
        dict(type="scatter", x=edge_x, y=edge_y, mode="lines", name="connections", showlegend=False,
                   line=dict(color="#C8CCD2", width=1.2), hoverinfo="skip"),
        dict(type="scatter", x=columns, y=np.full(n, -1), mode="markers", name="input xₜ",
                   showlegend=False, hovertemplate="input x_%{x}<extra></extra>",
                   marker=dict(symbol="square", size=size * 0.6, color="#9AA0A8")),
        dict(type="scatter", x=columns[has_loss], y=np.full(int(has_loss.sum()), L), mode="markers",
                   name="loss Lₜ", showlegend=False,
                   hovertemplate="loss L_%{x}: the gradient starts here<extra></extra>",
                   marker=dict(symbol="diamond", size=size * 0.8, color="#000000")),
        dict(type="scatter", 
            x=xs, y=ys, mode="markers", name="hidden states", uid="nodes", showlegend=False,
            customdata=norms.ravel(),
            marker=dict(size=size, color=colour.ravel(), colorscale=SEQUENTIAL,
                        line=dict(width=0.8, color="#333333"),
                        colorbar=dict(title=dict(text="log₁₀‖∂loss/∂hₜ‖"), thickness=12)),
            hovertemplate=("h_%{x}, layer %{y}<br>‖∂loss/∂h‖ = %{customdata:.3e}"
                           "<extra></extra>")),
    ]
    title = "Unrolled network, coloured by ‖∂loss/∂hₜ‖ (full BPTT)"
    if n < T:
        title += f": {n} of {T} steps shown"
    layout = base_layout(title, "time step t", "", height=200 + 60 * L)
    layout["yaxis"].update(tickvals=list(range(-1, L + 1)),
                           ticktext=["input"] + [f"layer {i}" for i in range(L)] + ["loss"],
                           range=[-1.7, L + 0.7], showgrid=False)
    layout["xaxis"].update(range=[-0.5 - T * 0.01, T - 0.5 + T * 0.01], showgrid=False)
    starts = chunk_starts(T, k)
    if 0 < len(starts) <= 100:
        layout["shapes"] = [dict(type="line", xref="x", yref="paper", x0=s - 0.5, x1=s - 0.5,
                                 y0=0, y1=1, line=dict(color=PALETTE[3], width=1.2, dash="dash"))
                            for s in starts]
        # Inside the plot, under the input row (the y range leaves room there): above the
        # plot it ran into the title once projector mode enlarged the fonts.
        layout["annotations"] = [dict(
            xref="paper", yref="paper", x=1, y=0.01, xanchor="right", yanchor="bottom",
            showarrow=False, font=dict(size=11, color=PALETTE[3]), bgcolor="rgba(255,255,255,0.8)",
            text=f"dashed: where truncated BPTT (k = {k}) cuts the backward flow")]
    layout["meta"] = {"seq_len": T, "num_layers": L, "columns": columns}
    return figure(data, layout)


def reach_figure(full_reach: engine.LossReach, trunc_reach: engine.LossReach | None,
                 seq_len: int, k: int | None, layer: int) -> Figure:
    """Side by side: log10 ||d L_t / d h_s|| (loss step t down, state step s across) for full
    and for truncated BPTT, on one colour scale; full BPTT alone when there is no truncation.
    Blank cells are exact zeros."""
    full = strided_reach(full_reach, layer)
    trunc = None if trunc_reach is None else strided_reach(trunc_reach, layer)
    z_full = log10_or_nan(full["norms"])
    z_trunc = None if trunc is None else log10_or_nan(trunc["norms"])
    zmin, zmax = (finite_range(z_full) if z_trunc is None else
                  finite_range(z_full, z_trunc)) or (0.0, 1.0)
    hover = ("loss step t = %{y}<br>state step s = %{x}<br>"
             "log₁₀‖∂L_t/∂h_s‖ = %{z:.2f}<extra>%{meta}</extra>")
    data = [
        dict(type="heatmap", z=z_full, x=full["state_steps"], y=full["loss_steps"],
             xaxis="x", yaxis="y",
                   zmin=zmin, zmax=zmax, colorscale=SEQUENTIAL, meta="full BPTT",
                   name="full BPTT",
                   colorbar=dict(title=dict(text="log₁₀"), thickness=12), hovertemplate=hover),
    ]
    if trunc is not None:
        data.append(dict(type="heatmap", z=z_trunc, x=trunc["state_steps"],
                         y=trunc["loss_steps"], xaxis="x2", yaxis="y2", zmin=zmin, zmax=zmax,
                         colorscale=SEQUENTIAL, showscale=False, meta=f"truncated, k = {k}",
                         name=f"truncated, k = {k}", hovertemplate=hover))
    title = "How far back each loss reaches: log₁₀‖∂Lₜ/∂hₛ‖"
    if trunc is None:
        title += " (full BPTT; truncation off)"
    if layer != full_reach.norms.shape[1] - 1 or full_reach.norms.shape[1] > 1:
        title += f" (layer {layer})"
    layout = base_layout(title, "state step s", "loss step t", height=400)
    y_range = [float(full["loss_steps"].max()) + 0.5, float(full["loss_steps"].min()) - 0.5] \
        if len(full["loss_steps"]) else None
    layout["yaxis"].update(range=y_range, autorange=False if y_range else True)
    layout["plot_bgcolor"] = "#F2F2F2"  # blank (exact zero) cells show as pale grey
    if trunc is None:
        layout["xaxis"].update(range=[-0.5, seq_len - 0.5],
                               title=dict(text="state step s  —  full BPTT"))
        return figure(data, layout)
    layout["xaxis"].update(domain=[0, 0.45], range=[-0.5, seq_len - 0.5],
                           title=dict(text="state step s  —  full BPTT"))
    layout["xaxis2"] = dict(domain=[0.53, 0.98], range=[-0.5, seq_len - 0.5], zeroline=False,
                            anchor="y2", title=dict(text=f"state step s  —  truncated, k = {k}"))
    layout["yaxis2"] = dict(anchor="x2", matches="y", zeroline=False, showticklabels=False)
    starts = np.concatenate([[0], chunk_starts(seq_len, k)])
    if len(starts) <= 100 and len(full["loss_steps"]):
        # Outline each chunk's triangle on the truncated panel: the only place it may be non-zero.
        layout["shapes"] = [dict(type="path", xref="x2", yref="y2",
                                 path=(f"M {s - 0.5},{s - 0.5} L {s - 0.5},{e - 0.5} "
                                       f"L {e - 0.5},{e - 0.5} Z"),
                                 line=dict(color=PALETTE[3], width=1.2))
                            for s, e in zip(starts, list(starts[1:]) + [seq_len], strict=True)]
    return figure(data, layout)


def _cut_shapes(seq_len: int, k: int | None) -> list[dict]:
    starts = chunk_starts(seq_len, k)
    if not 0 < len(starts) <= 100:
        return []
    return [dict(type="line", xref="x", yref="paper", x0=s - 0.5, x1=s - 0.5, y0=0, y1=1,
                 line=dict(color="#AAAAAA", width=1, dash="dot")) for s in starts]


def contribution_figure(full: Simulation, trunc: Simulation | None, k: int | None) -> Figure:
    """Each step's share of d loss / d W_hh (top layer, Frobenius norm), full vs truncated (full
    alone when ``trunc`` is None)."""
    steps = np.arange(full.trace.seq_len)
    hover = "t = %{x}<br>‖share of ∂loss/∂W_hh‖ = %{y:.3e}<extra>%{fullData.name}</extra>"
    data = [
        dict(type="scatter", x=steps, y=positive_or_none(full.contribution_norms[-1]),
             mode="lines+markers",
                   name="full BPTT", line=dict(color=FULL_COLOUR, width=2.5),
                   marker=dict(size=4), hovertemplate=hover),
    ]
    if trunc is not None:
        data.append(dict(type="scatter", x=steps,
                         y=positive_or_none(trunc.contribution_norms[-1]),
                         mode="lines+markers", name=f"truncated, k = {k}",
                         line=dict(color=TRUNCATED_COLOUR, width=2, dash="dash"),
                         marker=dict(size=4, symbol="x"), hovertemplate=hover))
    layout = base_layout("Which steps feed ∂loss/∂W_hh (top layer)", "time step t",
                         "‖step t's share‖ (log)", log_y=True)
    layout["shapes"] = _cut_shapes(full.trace.seq_len, k)
    return figure(data, layout)


def grad_norm_figure(full: Simulation, trunc: Simulation | None, k: int | None) -> Figure:
    """||d loss / d h_t|| of the top layer against t, full vs truncated (full alone when
    ``trunc`` is None), log axis."""
    steps = np.arange(full.trace.seq_len)
    hover = "t = %{x}<br>‖∂loss/∂h_t‖ = %{y:.3e}<extra>%{fullData.name}</extra>"
    data = [
        dict(type="scatter", x=steps, y=positive_or_none(full.grad_norms[-1]), mode="lines",
                   name="full BPTT", line=dict(color=FULL_COLOUR, width=2.5),
                   hovertemplate=hover),
    ]
    if trunc is not None:
        data.append(dict(type="scatter", x=steps, y=positive_or_none(trunc.grad_norms[-1]),
                         mode="lines", name=f"truncated, k = {k}",
                         line=dict(color=TRUNCATED_COLOUR, width=2, dash="dash"),
                         hovertemplate=hover))
    layout = base_layout("Gradient norm ‖∂loss/∂hₜ‖ at each step (top layer)", "time step t",
                         "‖∂loss/∂hₜ‖ (log)", log_y=True)
    layout["shapes"] = _cut_shapes(full.trace.seq_len, k)
    return figure(data, layout)


MAX_REACH_COLUMNS = 400  # state steps of the loss-reach matrices sent to the browser


def strided_reach(reach: engine.LossReach, layer: int) -> dict:
    """One layer of a loss-reach matrix for the JSON result, at most MAX_REACH_COLUMNS state
    steps (evenly strided) so a long sequence stays a small response."""
    seq_len = reach.norms.shape[-1]
    stride = max(1, -(-seq_len // MAX_REACH_COLUMNS))
    states = np.arange(0, seq_len, stride)
    return {"loss_steps": reach.loss_steps, "state_steps": states, "layer": layer,
            "norms": reach.norms[:, layer][:, states]}


def factor_figure(factors: np.ndarray, layer: int) -> Figure:
    """The per-step factor ||J_t|| = ||d s_t / d s_{t-1}|| of ``layer`` (markers) and the running
    product prod_{s=t+1}^{T-1} ||J_s|| from the end back to t (line, computed in log10 so it
    cannot overflow): the bound on how much one step back, and all the steps so far, can
    multiply the error. factors: (T,), nan where not computed (t = 0 always)."""
    T = len(factors)
    steps = np.arange(T)
    known = np.isfinite(factors) & (factors > 0)
    logs = np.where(known, np.log10(np.where(known, factors, 1.0)), np.nan)  # (T,)
    # product for step t covers J_{t+1} .. J_{T-1}: a reversed cumulative sum shifted by one
    product = np.full(T, np.nan)
    product[T - 1] = 0.0  # log10 of the empty product
    running = 0.0
    for t in range(T - 2, -1, -1):
        running += logs[t + 1]
        product[t] = running
    hover_factor = "t = %{x}<br>‖J_t‖ = %{y:.3g}<extra></extra>"
    hover_product = "t = %{x}<br>∏ ‖J_s‖, s = t+1 … T−1: %{y:.3g}<extra></extra>"
    data = [
        dict(type="scatter", x=steps[known], y=factors[known], mode="markers",
             name="‖J_t‖: one step back", marker=dict(color=FULL_COLOUR, size=6),
             hovertemplate=hover_factor),
        dict(type="scatter", x=steps[np.isfinite(product)], y=product[np.isfinite(product)],
             mode="lines", name="running product from T−1 back to t",
             line=dict(color=TRUNCATED_COLOUR, width=2.5), meta=dict(log10=True),
             hovertemplate=hover_product),
    ]
    layout = base_layout(f"The factor each step back multiplies by (layer {layer})",
                         "time step t", "‖∂h_t/∂h_(t−1)‖ (log)", log_y=True, height=300)
    layout["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=0, y1=0,
                             line=dict(color="#777777", dash="dot", width=1))]
    return figure(data, layout)
