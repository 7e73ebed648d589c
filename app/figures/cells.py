"""Figures and checks of the gated-cells page (/cells): what the gates do, what the cell state
holds, and how the gradient travels back along the carry (lstm's c, gru's z-gated copy of h).

Every figure shows one layer, the top one (where the loss enters), and sequence 0 of the batch
for the state pictures; the gradient norms are over the whole batch. ``view(config)`` is the
page's view builder (see ``app.views.view_builder``).
"""

from __future__ import annotations

import numpy as np

import engine
from app.figures.common import (
    DIVERGING,
    PALETTE,
    Figure,
    base_layout,
    figure,
    positive_or_none,
)
from app.progress import report, sweep_ready
from app.schemas import SimulationConfig
from app.simulation import MAX_HEATMAP_STEPS, MAX_HEATMAP_UNITS, Simulation, simulate
from app.views import ViewResult, check, paper_checks, summarize

GATED = ("lstm", "gru")
CARRY_GATE = {"lstm": "f", "gru": "z"}
GATE_LABELS = {
    "i": "i  input gate", "f": "f  forget gate", "g": "g  candidate", "o": "o  output gate",
    "r": "r  reset gate", "z": "z  update (carry) gate", "n": "n  candidate",
}
GATE_RANGE = {"g": (-1.05, 1.05), "n": (-1.05, 1.05)}  # tanh; the rest are sigmoids in (0, 1)
CEC_TOLERANCE = 0.01  # "constant": max / min of ||dL/dc_t|| over t within 1 %
CEC_MIN_GAIN = 0.99  # "f close enough to 1 for this length": prod f >= 0.99 over the sequence
SMALL_INPUT = 0.1  # input_scale up to which the gates sit at their biases


def sigmoid(x: float) -> float:
    return float(0.5 + 0.5 * np.tanh(0.5 * x))


def gated_config(config: SimulationConfig) -> tuple[SimulationConfig, bool]:
    """The configuration this page runs: rnn becomes lstm (the page is about gated cells).

    ``model_copy`` skips the work-budget validator, so a budget-sized rnn request costs at most
    4/1 times the budget as an lstm: still bounded, and only reachable by typing an rnn URL."""
    if config.cell in GATED:
        return config, False
    return config.model_copy(update={"cell": "lstm"}), True


def carry_bias(sim: Simulation) -> float | None:
    """The carry gate's total bias, when the configuration fixes it: lstm forget_bias; gru 0
    (every init but "default" zeroes the biases). None when the init draws random biases."""
    cfg = sim.config
    if cfg.cell == "lstm":
        return cfg.forget_bias
    return None if cfg.init == "default" else 0.0


def log_carry_gain(sim: Simulation) -> np.ndarray:
    """ln of the carry gain prod_{s>t} gate_s per (L, T, B, H), summed in log space so that a
    gain of 10^-400 is still a number (the product itself would underflow to 0)."""
    gate = sim.trace.gates[CARRY_GATE[sim.config.cell]]  # (L, T, B, H)
    with np.errstate(divide="ignore"):
        logs = np.log(gate)
    out = np.zeros_like(logs)
    out[:, :-1] = np.cumsum(logs[:, :0:-1], axis=1)[:, ::-1]
    return out


class CellDiagnostics:
    """The numbers behind the figures and checks, for one simulation, top layer."""

    def __init__(self, sim: Simulation) -> None:
        trace = sim.trace
        self.sim = sim
        self.layer = trace.num_layers - 1
        self.steps = np.arange(trace.seq_len)
        self.carry_name = CARRY_GATE[sim.config.cell]
        self.grad_hidden = sim.grad_norms  # (L, T)
        self.grad_cell = engine.cell_grad_norms(trace)  # (L, T) or None
        self.carry_path = engine.carry_path_grad_norms(trace)  # (L, T)
        # The quantity the carry holds: c for lstm, h for gru.
        self.grad_state = self.grad_cell if self.grad_cell is not None else self.grad_hidden
        log_gain = log_carry_gain(sim)  # (L, T, B, H)
        with np.errstate(under="ignore"):
            gain = np.exp(log_gain)
        self.gain_mean = gain.mean(axis=(2, 3))  # (L, T)
        self.gain_min = gain.min(axis=(2, 3))
        self.gain_max = gain.max(axis=(2, 3))
        self.log_gain_min = log_gain.min(axis=(2, 3))  # (L, T), for exact checks
        self.log_gain_max = log_gain.max(axis=(2, 3))
        self.gate_mean = {name: values.mean(axis=(1, 2, 3))  # (L,) per gate
                          for name, values in trace.gates.items()}
        self.bias = carry_bias(sim)

    def reference(self) -> np.ndarray | None:
        """sigma(b)^(T-1-t): the carry gain if the carry gate sat exactly at its bias."""
        if self.bias is None:
            return None
        with np.errstate(under="ignore"):
            return sigmoid(self.bias) ** (self.steps[-1] - self.steps).astype(float)


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
        title += f" ({len(units)} of {H} units, every {stride}th step)"
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


# ---------------------------------------------------------------- checks


def cell_checks(diag: CellDiagnostics) -> list[dict]:
    """The gated-cell claims, each pass / fail by the numbers, or n/a where the premise fails."""
    sim, layer = diag.sim, diag.layer
    cfg = sim.config
    lstm = cfg.cell == "lstm"
    gate = diag.carry_name
    T = sim.trace.seq_len
    checks = []
    whole_gain = float(np.exp(diag.log_gain_min[layer, 0]))  # the weakest unit, over t = 0..T-1
    simple_loss = cfg.loss_at == "last" and not cfg.truncation_or_none
    loss_note = ("needs the loss at the last step only and full BPTT (otherwise new error "
                 "enters or is cut on the way)")

    # 1. The constant error carousel, on the full gradient of c.
    label = "Constant error carousel: f ≈ 1 and nothing else feeding c ⇒ ‖∂L/∂cₜ‖ constant"
    if not lstm:
        checks.append(check("cec", label, "n/a", "lstm only: gru has no separate cell state"))
    else:
        mean_f = float(diag.gate_mean["f"][layer])
        mean_i = float(diag.gate_mean["i"][layer])
        quiet = cfg.weight_scale == 0 or mean_i < 0.01
        norms = diag.grad_cell[layer]
        if not simple_loss:
            checks.append(check("cec", label, "n/a", loss_note))
        elif not (mean_f > 0.999 and whole_gain >= CEC_MIN_GAIN):
            checks.append(check("cec", label, "n/a",
                                f"mean f = {mean_f:.5g}, ∏f of the weakest unit = "
                                f"{whole_gain:.3g} over {T} steps: f is not close enough to 1 "
                                "for this length"))
        elif not quiet:
            checks.append(check("cec", label, "n/a",
                                f"mean i = {mean_i:.3g} and weight_scale = {cfg.weight_scale:g}: "
                                "error also returns into c through the gates' recurrent weights "
                                "(set weight_scale 0 to close that path)"))
        else:
            ok_values = bool(np.all(np.isfinite(norms)) and norms.min() > 0)
            ratio = float(norms.max() / norms.min()) if ok_values else float("inf")
            checks.append(check(
                "cec", label, "pass" if ratio <= 1 + CEC_TOLERANCE else "fail",
                f"mean f = {mean_f:.6g}: max/min of ‖∂L/∂cₜ‖ over t = {ratio:.5g} "
                f"(constant within {CEC_TOLERANCE:.0%} passes)"))

    # 2. The carry path is exactly the error times the carry gain.
    label = f"Carry-only gradient = error at T−1 × ∏{gate} (between the units' min and max gain)"
    if not simple_loss:
        checks.append(check("carry_path", label, "n/a", loss_note))
    else:
        carried = diag.carry_path[layer]
        with np.errstate(divide="ignore"):
            log_ratio = np.log(carried) - np.log(carried[-1])  # (T,)
        finite = np.isfinite(log_ratio)
        slack = 1e-9 * (1 + np.abs(log_ratio[finite]))
        within = bool(np.all((log_ratio[finite] >= diag.log_gain_min[layer][finite] - slack)
                             & (log_ratio[finite] <= diag.log_gain_max[layer][finite] + slack)))
        checks.append(check(
            "carry_path", label, "pass" if within and finite.any() else "fail",
            f"checked at {int(finite.sum())} of {T} steps (the rest underflowed to 0)"
            if not finite.all() else f"checked at all {T} steps"))

    # 3. At small inputs the carry gate sits at its bias: gain = sigma(b)^(T-1).
    label = ("Carry gain ≈ σ(b_f)^(T−1) when the inputs are small" if lstm
             else "Carry gain ≈ σ(0)^(T−1) (z's bias is 0) when the inputs are small")
    if diag.bias is None:
        checks.append(check("carry_bias", label, "n/a",
                            "init “default” draws random biases: no single bias to compare"))
    elif cfg.input_scale > SMALL_INPUT:
        checks.append(check("carry_bias", label, "n/a",
                            f"input_scale = {cfg.input_scale:g} > {SMALL_INPUT:g}: the inputs "
                            f"move {gate} away from its bias"))
    else:
        log_mean_gain = _log_mean_exp(log_carry_gain(sim)[layer, 0])
        log_reference = (T - 1) * np.log(sigmoid(diag.bias))
        tolerance = max(0.05, 0.05 * abs(log_reference))
        ok = bool(abs(log_mean_gain - log_reference) <= tolerance)
        checks.append(check(
            "carry_bias", label, "pass" if ok else "fail",
            f"gain from t = 0 to T−1: {_exp10_text(log_mean_gain)} vs "
            f"σ({diag.bias:g})^{T - 1} = {_exp10_text(log_reference)}"))
    return checks


def _log_mean_exp(logs: np.ndarray) -> float:
    top = float(np.max(logs))
    if not np.isfinite(top):
        return top
    return top + float(np.log(np.mean(np.exp(logs - top))))


def _exp10_text(log_value: float) -> str:
    """A number given by its natural log, written without underflowing: 0.991 or 3.2e-412."""
    if not np.isfinite(log_value):
        return "0"
    log10 = log_value / np.log(10)
    if log10 > -4:
        return f"{np.exp(log_value):.4g}"
    exponent = int(np.floor(log10))
    return f"{10 ** (log10 - exponent):.3g}e{exponent}"


# ---------------------------------------------------------------- the view


def view(config: SimulationConfig) -> ViewResult:
    """The /cells page: gates, the carried state, and the gradient along the carry."""
    config, substituted = gated_config(config)
    report("forward and backward pass", 0.0)
    sim = simulate(config)
    sweep_ready(sim.grad_norms)
    report("gates, carry path and checks", 0.4)
    diag = CellDiagnostics(sim)
    layer = diag.layer
    gate = diag.carry_name
    summary = summarize(sim)
    log_gain = _log_mean_exp(log_carry_gain(sim)[layer, 0])
    reference = diag.reference()
    summary.update({
        "cell_substituted": substituted,
        "note": ("this page is about gated cells, so rnn was replaced by lstm (the page's "
                 "default cell)") if substituted else None,
        "layer_shown": layer,
        "carry_gate": gate,
        "mean_carry_gate": float(diag.gate_mean[gate][layer]),
        "mean_gates": {name: float(values[layer]) for name, values in diag.gate_mean.items()},
        "carry_gain_total": float(np.exp(log_gain)),
        "carry_gain_total_log10": float(log_gain / np.log(10)),
        "carry_gain_reference": None if reference is None else float(reference[0]),
        "grad_state_first": float(diag.grad_state[layer, 0]),
        "grad_state_last": float(diag.grad_state[layer, -1]),
        "carry_path_first": float(diag.carry_path[layer, 0]),
        "carry_path_last": float(diag.carry_path[layer, -1]),
    })
    checks = cell_checks(diag) + paper_checks(sim)
    report("figures", 0.8)
    return ViewResult(
        primary=sim,
        summary=summary,
        checks=checks,
        figures=build(sim, diag),
        series={
            "grad_hidden": diag.grad_hidden,
            "grad_cell": diag.grad_cell,
            "carry_path": diag.carry_path,
            "carry_gain_mean": diag.gain_mean,
            "gate_means": {name: values[layer, :, 0].mean(axis=-1)
                           for name, values in sim.trace.gates.items()},
        },
    )
