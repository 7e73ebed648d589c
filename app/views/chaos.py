"""The edge-of-chaos view (/chaos): Lyapunov exponents and Jacobian spectra of the run.

One run (forward and backward), then along it: the top k Lyapunov exponents of each layer
(``engine.lyapunov_spectrum``, warm-up T // 10), every singular value of d h_{T-1} / d h_t at up
to 60 steps t, and a phase diagram of the largest exponent over weight scale x input scale (and
x forget bias for lstm), computed row by row and handed to the stream as ``partial`` events as
each row is done. Its sizes come from ``schemas.chaos_plan``, which is what the work budget
counts.

-inf is a true result here (a relu unit stuck at 0, a zero row of W_hh: a direction mapped
exactly to 0), not an overflow. JSON has no -inf, and nulling it through ``jsonsafe`` would
list it under ``nonfinite``, which means "overflowed". So exponents go out as null plus a mask,
``series.lyapunov_minus_infinity`` (true where the exponent is -inf); a null without the mask is
a value that is not a number (an overflowed run), and is listed under ``nonfinite``.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures import chaos as figures
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.progress import partial, report, sweep_ready
from gradient_flow_lab.app.schemas import CHAOS_FAN_POINTS, ChaosPlan, SimulationConfig, chaos_plan
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views.common import EDGE_NATS, ViewResult, check, summarize

LN10 = float(np.log(10.0))
# |λ₁| below this (nats per step) is too small to judge from the gradient-norm curve: over 100
# steps it changes the gradient by less than a factor e^2 ≈ 7, within what the direction of the
# gradient and the inputs move it by.
SIGN_THRESHOLD = 0.02
# The slope is compared with λ₁ only when |λ₁| is at least this; then within RATE_TOLERANCE.
RATE_THRESHOLD = 0.1
RATE_TOLERANCE = 0.25
EDGE = EDGE_NATS  # |λ₁| below this (0.01): "near the edge of chaos", ×0.990 to ×1.010 a step
SLOW = 0.1  # |λ₁| below this: the gradient shrinks or grows "slowly" (under ~10% a step)
# Fewer averaged steps than this: λ₁ is a number, but one too short-lived to predict anything.
MIN_STEPS_TO_PREDICT = 10


def largest_exponent(sim: Simulation) -> float:
    """λ₁ of the top layer, k = 1 (one random unit vector), warm-up T // 10, sequence 0: the
    cheap estimate /explore shows (O(T G H^2))."""
    trace = sim.trace
    result = engine.lyapunov_spectrum(sim.config.cell, sim.params, trace, layer=-1, k=1,
                                      warmup=trace.seq_len // 10, seed=sim.config.seed)
    return float(not_past_overflow(sim, result.exponents)[0])


def not_past_overflow(sim: Simulation, exponents: np.ndarray) -> np.ndarray:
    """The exponents, or nan for all of them when the forward pass overflowed: past that step
    the states are inf or nan and the Jacobians mean nothing (a relu's nan state even reads as a
    dead unit, giving a false -inf)."""
    if sim.trace.overflow_step is None:
        return exponents
    return np.full(np.shape(exponents), np.nan)


def prediction(largest: float, steps: int | None = None) -> str:
    """What λ₁ (averaged over ``steps`` steps) says about the gradient going back, in words that
    match its size: "near the edge" within ×0.990 to ×1.010 a step (|λ₁| < EDGE), "shrinks" or
    "grows slowly" up to 10% a step (|λ₁| < SLOW), "vanishes" or "explodes" beyond that."""
    if steps is not None and steps < MIN_STEPS_TO_PREDICT and not np.isneginf(largest):
        return (f"no prediction: λ₁ is averaged over {steps} step{'s' if steps != 1 else ''}, "
                f"too few (under {MIN_STEPS_TO_PREDICT}) to say whether the gradient vanishes "
                "or explodes")
    if np.isneginf(largest):
        return "cut to zero: some step maps every direction to 0 (λ₁ = −∞)"
    if not np.isfinite(largest):
        return "no prediction: the run overflowed, so λ₁ is not a number"
    words = figures.rate_words(largest)
    if abs(largest) < EDGE:
        return (f"near the edge of chaos: the gradient neither vanishes nor explodes ({words}; "
                f"within ×{np.exp(-EDGE):.3f} to ×{np.exp(EDGE):.3f} counts as the edge)")
    if abs(largest) < SLOW:
        slowly = (f"slowly: between ×{np.exp(-SLOW):.3f} and ×{np.exp(SLOW):.3f} a step, "
                  f"|λ₁| < {SLOW:g}")
        if largest < 0:
            return f"ordered: the gradient shrinks slowly going back ({words}; {slowly})"
        return f"chaotic: the gradient grows slowly going back ({words}; {slowly})"
    if largest < 0:
        return f"ordered: the gradient vanishes going back ({words})"
    return f"chaotic: the gradient explodes going back ({words})"


def exponent_summary(largest: float, steps: int | None = None) -> dict:
    """The fields /explore and /chaos add to their summary for λ₁ (null plus a flag for -inf)."""
    return {
        "lyapunov_largest": largest if np.isfinite(largest) else None,
        "lyapunov_minus_infinity": bool(np.isneginf(largest)),
        "lyapunov_factor_per_step": float(np.exp(largest)) if not np.isnan(largest) else None,
        "lyapunov_decades_per_step": largest / LN10 if np.isfinite(largest) else None,
        "lyapunov_prediction": prediction(largest, steps),
    }


def with_minus_infinity(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values as an object array with None where -inf, the -inf mask): see the module docstring.
    nan and +inf stay as they are, to be nulled and reported by the JSON boundary."""
    values = np.asarray(values, dtype=float)
    mask = np.isneginf(values)
    return np.where(mask, None, values), mask


def grid_axes(config: SimulationConfig, plan: ChaosPlan, column: str) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """(weight scales (R,), column values (C,)): ranges that hold the usual edge of chaos and
    the current setting, within the fields' bounds."""
    rows, cols = plan.grid
    top = min(10.0, max(4.0, 1.25 * config.weight_scale))
    weight_scales = np.linspace(0.25, top, rows)
    if column == "input_scale":
        values = np.linspace(0.0, min(10.0, max(2.0, 1.25 * config.input_scale)), cols)
    else:
        values = np.linspace(max(-10.0, min(-4.0, config.forget_bias - 1)),
                             min(10.0, max(6.0, config.forget_bias + 1)), cols)
    return weight_scales.round(4), values.round(4)


def phase_diagrams(config: SimulationConfig, plan: ChaosPlan, start: float,
                   share: float) -> dict[str, dict]:
    """The phase diagram of each panel, row by row, each row handed over with
    ``progress.partial("phase", ...)`` as soon as it is done."""
    phases = {}
    total = plan.grid_points
    done_points = 0
    for column in plan.panels:
        weight_scales, values = grid_axes(config, plan, column)
        grid = np.full((len(weight_scales), len(values)), np.nan)
        current = (config.input_scale if column == "input_scale" else config.forget_bias,
                   config.weight_scale)
        for row, weight_scale in enumerate(weight_scales):
            report(f"phase diagram over {column.replace('_', ' ')}: row {row + 1} of "
                   f"{len(weight_scales)}", start + share * done_points / total)
            grid[row] = engine.largest_exponent_grid(
                config.cell, [float(weight_scale)], values, column=column,
                input_scale=config.input_scale, forget_bias=config.forget_bias,
                hidden_size=config.hidden_size, seq_len=plan.grid_steps,
                input_size=config.input_size, num_layers=config.num_layers, layer=-1,
                init=config.init, nonlinearity=config.nonlinearity, seed=config.seed)[0]
            done_points += len(values)
            shown, minus_inf = with_minus_infinity(grid[row])
            fig = figures.phase_figure(weight_scales, values, column, grid, current,
                                       plan.grid_steps, rows_done=row + 1)
            partial("phase", {"panel": column, "row": row, "rows": len(weight_scales),
                              "weight_scale": float(weight_scale), "columns": values,
                              "largest": shown, "minus_infinity": minus_inf,
                              "figure": figure_json(fig)})
        phases[column] = {"weight_scales": weight_scales, "columns": values, "grid": grid,
                          "current": current, "grid_steps": plan.grid_steps}
    return phases


def fitted_growth(norms: np.ndarray, skip: int) -> float | None:
    """Growth rate per step *backwards* of ||d loss / d h_t|| (nats per step): minus the
    least-squares slope of ln norm against t over t = 0 .. T-1-skip; None if it has fewer than
    3 positive finite points."""
    T = len(norms)
    t = np.arange(T - skip)
    values = norms[: T - skip]
    usable = np.isfinite(values) & (values > 0)
    if usable.sum() < 3:
        return None
    slope = np.polyfit(t[usable], np.log(values[usable]), 1)[0]
    return float(-slope)


SIGN = "The sign of λ₁ predicts whether ‖∂loss/∂hₜ‖ falls or rises going back"
RATE = "The gradient-norm curve falls (or rises) at λ₁ per step"


def chaos_checks(sim: Simulation, largest: float) -> list[dict]:
    config = sim.config
    overflow = sim.overflow_step
    checks = [check("finite", "No overflow", "pass" if overflow is None else "fail",
                    "every value finite" if overflow is None else f"overflowed at t = {overflow}")]
    skip = max(1, config.seq_len // 10)  # the steps nearest the loss, where the direction settles
    reason = None
    if overflow is not None or not np.isfinite(largest):
        reason = "the run overflowed" if overflow is not None else "λ₁ is −∞ or not a number"
    elif config.loss_at == "all":
        reason = ("with a loss at every step, ∂loss/∂hₜ sums the gradients of every later loss, "
                  "so its slope is not λ₁'s; set the loss at the last step")
    elif config.truncation and config.truncation < config.seq_len:
        reason = "truncated BPTT cuts the gradient at every chunk boundary"
    elif config.seq_len - skip < 10:
        reason = "fewer than 10 steps to fit a slope to"
    growth = None if reason else fitted_growth(sim.grad_norms[-1], skip)
    if reason is None and growth is None:
        reason = "too few positive, finite gradient norms to fit a slope"
    if reason:
        checks.append(check("sign", SIGN, "n/a", reason))
        checks.append(check("rate", RATE, "n/a", reason))
        return checks
    fit = (f"fitted slope {figures.exponent_text(growth)} against λ₁ = "
           f"{figures.exponent_text(largest)} nats per step (t = 0 to {config.seq_len - 1 - skip})")
    if abs(largest) < SIGN_THRESHOLD:
        checks.append(check("sign", SIGN, "n/a",
                            f"|λ₁| = {abs(largest):.3g} < {SIGN_THRESHOLD}: too close to 0 to "
                            f"judge ({fit})"))
    else:
        agree = np.sign(growth) == np.sign(largest)
        checks.append(check("sign", SIGN, "pass" if agree else "fail", fit))
    if abs(largest) < RATE_THRESHOLD:
        checks.append(check("rate", RATE, "n/a",
                            f"compared only when |λ₁| ≥ {RATE_THRESHOLD} ({fit})"))
    else:
        close = abs(growth - largest) <= RATE_TOLERANCE * abs(largest)
        checks.append(check("rate", RATE, "pass" if close else "fail",
                            f"{fit}; within {RATE_TOLERANCE:.0%} counts"))
    return checks


def view(config: SimulationConfig) -> ViewResult:
    plan = chaos_plan(config)
    report("forward and backward pass", 0.0)
    sim = simulate(config)
    sweep_ready(sim.grad_norms)
    T = config.seq_len
    warmup = T // 10
    report(f"Lyapunov spectrum (top {plan.k} exponents per layer)", 0.1)
    spectrum = engine.lyapunov_spectrum(config.cell, sim.params, sim.trace, k=plan.k,
                                        warmup=warmup, seed=config.seed)
    exponents = not_past_overflow(sim, spectrum.exponents)  # (L, k)
    largest = float(exponents[-1, 0])  # the top layer's: the one ∂loss/∂hₜ flows through
    report("singular values of the Jacobian product", 0.2)
    fan_steps = np.unique(np.linspace(0, T - 1, min(T, CHAOS_FAN_POINTS)).round().astype(int))
    fan = not_past_overflow(sim, engine.jacobian_product_singular_values(
        config.cell, sim.params, sim.trace, fan_steps, layer=-1, log=True))  # (n, H) nat. logs
    phases = phase_diagrams(config, plan, 0.3, 0.6)
    report("figures", 0.92)
    checks = chaos_checks(sim, largest)
    summary = summarize(sim)
    summary.update(exponent_summary(largest, T - warmup))
    summary.update({
        "lyapunov_k": plan.k, "state_size": plan.state_size, "warmup": warmup,
        "steps_averaged": T - warmup, "phase_grid": list(plan.grid),
        "phase_panels": list(plan.panels), "phase_steps": plan.grid_steps,
        "sign_threshold": SIGN_THRESHOLD,
    })
    shown, minus_inf = with_minus_infinity(exponents)
    running, running_minus_inf = with_minus_infinity(
        not_past_overflow(sim, spectrum.running_largest))
    fan_log10, fan_zero = with_minus_infinity(fan / LN10)
    series = {
        "lyapunov_exponents": shown,  # (L, k) nats per step, sorted descending, None = -inf
        "lyapunov_minus_infinity": minus_inf,  # (L, k) True where the exponent is -inf
        "lyapunov_running_largest": running,  # (L, T - warmup), None = -inf as above
        "lyapunov_running_minus_infinity": running_minus_inf,
        "lyapunov_steps": spectrum.steps,
        "grad_norms": sim.grad_norms,
        "singular_values_log10": {"steps": fan_steps, "log10": fan_log10,
                                  "zero": fan_zero},  # (n, H); zero: exactly 0 (log -inf)
        "phase": {column: {"weight_scales": p["weight_scales"], "columns": p["columns"],
                           "largest": with_minus_infinity(p["grid"])[0],
                           "minus_infinity": with_minus_infinity(p["grid"])[1],
                           "steps": p["grid_steps"]}
                  for column, p in phases.items()},
    }
    return ViewResult(
        primary=sim, summary=summary, checks=checks,
        figures=figures.build(exponents=exponents, state_size=plan.state_size, warmup=warmup,
                              steps_averaged=T - warmup, grad_norms=sim.grad_norms[-1],
                              largest=largest, fan_steps=fan_steps, fan_log_values=fan,
                              seq_len=T, phases=phases),
        series=series,
    )
