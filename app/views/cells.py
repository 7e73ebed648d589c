"""The gated-cells page's view (/cells): what the gates do, what the cell state holds, and how
the gradient travels back along the carry (lstm's c, gru's z-gated copy of h), with its checks.

Every number is for one layer, the top one (where the loss enters); the state pictures use
sequence 0 of the batch, the gradient norms the whole batch.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures import cells as figures
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views import words
from gradient_flow_lab.app.views.common import ViewResult, check, paper_checks, summarize

GATED = ("lstm", "gru")


CEC_TOLERANCE = 0.01  # "constant": max / min of ||dL/dc_t|| over t within 1 %


CEC_MIN_GAIN = 0.99  # "f close enough to 1 for this length": prod f >= 0.99 over the sequence


SMALL_INPUT = 0.1  # input_scale up to which the gates sit at their biases


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


class CellDiagnostics:
    """The numbers behind the figures and checks, for one simulation, top layer."""

    def __init__(self, sim: Simulation) -> None:
        trace = sim.trace
        self.sim = sim
        self.layer = trace.num_layers - 1
        self.steps = np.arange(trace.seq_len)
        self.carry_name = engine.CARRY_GATE[sim.config.cell]
        self.grad_hidden = sim.grad_norms  # (L, T)
        self.grad_cell = engine.cell_grad_norms(trace)  # (L, T) or None
        self.carry_path = engine.carry_path_grad_norms(trace)  # (L, T)
        # The quantity the carry holds: c for lstm, h for gru.
        self.grad_state = self.grad_cell if self.grad_cell is not None else self.grad_hidden
        self.log_gain = log_gain = engine.log_carry_gain(trace)  # (L, T, B, H), nats
        gain = engine.carry_gain(trace)  # (L, T, B, H)
        self.gain_mean = gain.mean(axis=(2, 3))  # (L, T)
        self.gain_min = gain.min(axis=(2, 3))
        self.gain_max = gain.max(axis=(2, 3))
        self.log_gain_min = log_gain.min(axis=(2, 3))  # (L, T), for exact checks
        self.log_gain_max = log_gain.max(axis=(2, 3))
        self.gate_mean = {name: values.mean(axis=(1, 2, 3))  # (L,) per gate
                          for name, values in trace.gates.items()}
        self.bias = carry_bias(sim)
        # (L,) share of the carry gate's values above OPEN: units copying their state forward
        self.open_share = float(np.mean(trace.gates[self.carry_name][self.layer] > OPEN))

    def reference(self) -> np.ndarray | None:
        """sigma(b)^(T-1-t): the carry gain if the carry gate sat exactly at its bias."""
        if self.bias is None:
            return None
        with np.errstate(under="ignore"):
            return float(engine.sigmoid(self.bias)) ** (self.steps[-1] - self.steps).astype(float)


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
        log_mean_gain = engine.log_mean_exp(diag.log_gain[layer, 0])
        log_reference = (T - 1) * np.log(float(engine.sigmoid(diag.bias)))
        tolerance = max(0.05, 0.05 * abs(log_reference))
        ok = bool(abs(log_mean_gain - log_reference) <= tolerance)
        checks.append(check(
            "carry_bias", label, "pass" if ok else "fail",
            f"gain from t = 0 to T−1: {_exp10_text(log_mean_gain)} vs "
            f"σ({diag.bias:g})^{T - 1} = {_exp10_text(log_reference)}"))
    checks.append(carry_share_check(diag, simple_loss, loss_note))
    return checks


OPEN = 0.95  # a carry gate above this is "open": the unit copies its state forward
CARRY_SHARE = 0.5  # "most of the gradient": the carry path alone brings at least this share


def carry_share_check(diag: CellDiagnostics, simple_loss: bool, loss_note: str) -> dict:
    """Whether the error reaching t = 0 comes along the carry path (×f or ×z per step, nothing
    else) or by the other roads: the carry path's ‖∂L/∂s₀‖ against all roads' together."""
    sim, layer, gate = diag.sim, diag.layer, diag.carry_name
    state = "c" if sim.config.cell == "lstm" else "h"
    label = (f"This run: most of the gradient at t = 0 arrives along the carry path "
             f"(×{gate} per step)")
    T = sim.trace.seq_len
    if T < 2:
        return check("carry_share", label, "n/a", "T = 1: there is no step to go back",
                     "measured")
    if not simple_loss:
        return check("carry_share", label, "n/a", loss_note, "measured")
    if sim.overflow_step is not None:
        return check("carry_share", label, "n/a",
                     f"the run overflowed at t = {sim.overflow_step}", "measured")
    carried = float(diag.carry_path[layer, 0])
    total = float(diag.grad_state[layer, 0])
    last = float(diag.grad_state[layer, -1])
    open_share = diag.open_share
    opened = f"{gate} > {OPEN} in {open_share:.0%} of its values"
    if total == 0:
        return check("carry_share", label, "n/a",
                     f"‖∂L/∂{state}₀‖ is exactly 0: no gradient reaches t = 0 ({opened})",
                     "measured")
    share = carried / total
    return check(
        "carry_share", label, "pass" if share >= CARRY_SHARE else "fail",
        f"along the carry path alone {words.sci(carried)} reaches t = 0, "
        f"{words.ratio_words(carried / last if last else float('nan'), 'the error at the end')} "
        f"({words.sci(last)}); all roads together bring {words.sci(total)}, so the carry path "
        f"brings {words.ratio_words(share, 'that total')} (at least "
        f"{CARRY_SHARE:.0%} counts as most); {opened}", "measured")


def _exp10_text(log_value: float) -> str:
    """A number given by its natural log, written without underflowing: 0.991 or 3.2e-412."""
    if not np.isfinite(log_value):
        return "0"
    log10 = log_value / np.log(10)
    if log10 > -4:
        return f"{np.exp(log_value):.4g}"
    exponent = int(np.floor(log10))
    return f"{10 ** (log10 - exponent):.3g}e{exponent}"


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
    log_gain = engine.log_mean_exp(diag.log_gain[layer, 0])
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
        "carry_open_share": diag.open_share,
        "carry_open_threshold": OPEN,
    })
    checks = cell_checks(diag) + paper_checks(sim)
    report("figures", 0.8)
    return ViewResult(
        primary=sim,
        summary=summary,
        checks=checks,
        figures=figures.build(sim, diag),
        series={
            "grad_hidden": diag.grad_hidden,
            "grad_cell": diag.grad_cell,
            "carry_path": diag.carry_path,
            "carry_gain_mean": diag.gain_mean,
            "gate_means": {name: values[layer, :, 0].mean(axis=-1)
                           for name, values in sim.trace.gates.items()},
        },
    )
