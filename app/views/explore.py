"""The explorer's view (/explore): one run, its Jacobian products and per-step contributions,
the checks, and the sentences of the status line and the bound's caption, built from the numbers.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab.app.figures import explore as explore_figures
from gradient_flow_lab.app.figures.common import log10_gaps
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views import words
from gradient_flow_lab.app.views.chaos import exponent_summary, largest_exponent
from gradient_flow_lab.app.views.common import (
    RATE_TOLERANCE,
    ViewResult,
    paper_checks,
    run_checks,
    summarize,
    travel_premise,
    travel_words,
)


def bound_sentence(sim: Simulation) -> str:
    """What the dashed line on the gradient plot is, and whether the curve stays under it here."""
    if sim.gamma is None:
        return ("No bound is drawn: gated cells have no single γ (their gates' slopes change "
                "from step to step).")
    rate = sim.gamma * sim.sigma_max[-1]
    cfg, T = sim.config, sim.trace.seq_len
    text = ("The dashed line is the bound of Pascanu, Mikolov and Bengio, built back from the "
            "end: at each step, what that step's own loss sends to hₜ directly, plus "
            f"γ·σ_max = {rate:.3g} times the bound one step later")
    if cfg.truncation_or_none and cfg.truncation_or_none < T:
        text += f", restarting at every chunk start (k = {cfg.truncation})"
    elif cfg.loss_at == "last":
        text += (". With the loss at the last step only this is (γ·σ_max)^(T−1−t) × "
                 "‖∂loss/∂h_T−1‖")
    else:
        text += (". With a loss at every step it adds every later loss's share, so it is "
                 "higher than (γ·σ_max)^(T−1−t) × ‖∂loss/∂h_T−1‖")
    bound = sim.bound_log10
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(sim.grad_norms[-1])
    comparable = ~np.isnan(logs) & ~np.isposinf(logs) & ~np.isnan(bound)
    if not comparable.any():
        return text + f". No step of {T} has a finite gradient to compare with it."
    above = comparable & (logs > bound + RATE_TOLERANCE)
    if above.any():
        first = int(np.flatnonzero(above)[0])
        return (text + f". Here the curve rises above it at {int(above.sum())} of "
                f"{int(comparable.sum())} steps (first at t = {first}): the bound is broken.")
    at_start = ""
    if comparable[0] and np.isfinite(bound[0]):
        gap = float(logs[0] - bound[0])  # <= 0
        at_start = (f"; at t = 0 the gradient is "
                    f"{words.ratio_words(10.0 ** gap if gap > -300 else 0.0, 'the bound')}"
                    if np.isfinite(gap) else "; at t = 0 the gradient is exactly 0")
    return (text + f". Here the curve stays under it at all {int(comparable.sum())} steps "
            f"with a finite gradient{at_start}.")


def status_parts(sim: Simulation, summary: dict) -> list[str]:
    """The status line, part by part, every norm named by what it is a norm of."""
    parts = []
    overflow = sim.overflow_step
    if np.isfinite(sim.trace.loss):
        parts.append(f"loss = {summary['loss']:.3g}")
    else:
        parts.append(f"the loss is not a number: the run left float64 at t = {overflow}")
    if summary["gamma_sigma"] is not None:
        parts.append(f"γ·σ_max = {summary['gamma_sigma']:.3g}")
    clip = summary["clipping"]
    if np.isfinite(clip["norm"]):
        text = f"‖∂loss/∂θ‖ (all weights) = {words.sci(clip['norm'], 3)}"
        if clip["threshold"] is not None:
            text += (f", {words.sci(clip['clipped_norm'], 3)} after clipping at "
                     f"{clip['threshold']:g}")
        parts.append(text)
    else:
        parts.append("‖∂loss/∂θ‖ (all weights) is not a number")
    premise = travel_premise(sim)
    if overflow is not None:
        parts.append(f"no gradient is a number from the overflow at t = {overflow} on"
                     if np.isfinite(sim.grad_norms).any() else
                     "no ‖∂loss/∂hₜ‖ at any step is a number")
    elif sim.trace.seq_len > 1:
        if premise is None or sim.config.loss_at == "last":
            parts.append(travel_words(sim)[2])
        else:
            ratio = summary["retention"]
            parts.append(f"with a loss at every step, ‖∂loss/∂h₀‖ is "
                         f"{words.ratio_words(ratio, '‖∂loss/∂h_T−1‖')} (h₀ collects all "
                         f"{sim.trace.seq_len} losses, h_T−1 one)")
    if summary.get("lyapunov_minus_infinity"):
        parts.append(f"λ₁ = −∞: {summary['lyapunov_prediction']}")
    elif summary.get("lyapunov_largest") is not None:
        parts.append(f"λ₁ = {summary['lyapunov_largest']:.3g} nats/step: ".replace("-", "−")
                     + summary["lyapunov_prediction"])
    elif overflow is not None:
        parts.append("λ₁ cannot be measured: the states past the overflow are not numbers")
    else:
        parts.append(f"λ₁: {summary['lyapunov_prediction']}")
    return parts


def view(config: SimulationConfig) -> ViewResult:
    report("forward and backward pass", 0.0)
    sim = simulate(config)
    sweep_ready(sim.grad_norms)
    report("products of Jacobians and per-step contributions", 0.45)
    jac = sim.jacobian
    sim.contribution_norms  # noqa: B018 (computed here, so the progress report is true)
    summary = summarize(sim)
    # λ₁ of the top layer (k = 1, O(T G H^2)) and what its sign says about the gradient
    T = sim.trace.seq_len  # λ₁ is averaged over the steps after a warm-up of T // 10
    largest = largest_exponent(sim)
    summary.update(exponent_summary(largest, T - T // 10))
    checks = paper_checks(sim) + run_checks(sim, largest)
    summary["status"] = status_parts(sim, summary)
    summary["bound_sentence"] = bound_sentence(sim)
    report("figures", 0.8)
    return ViewResult(
        primary=sim,
        summary=summary,
        checks=checks,
        figures=explore_figures.build(sim),
        series={
            "grad_norms": sim.grad_norms,
            "bound_log10": None if sim.bound_log10 is None else log10_gaps(sim.bound_log10),
            "jacobian": {"steps": jac.steps, "norms": jac.norms,
                         "window_start": jac.window_start},
            "contribution_norms": sim.contribution_norms,
        },
    )
