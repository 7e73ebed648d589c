"""What each page asks the API for: a registry of view builders.

A view builder takes the configuration and returns a ``ViewResult``: the simulations it ran,
a summary, the "paper checks", named Plotly figures and extra series, all NumPy / plain Python.
``app.routers.api`` turns it into strict JSON and streams it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.figures import explore as explore_figures
from app.figures.common import Figure
from app.progress import report, sweep_ready
from app.schemas import WORK_BUDGET, SimulationConfig
from app.simulation import Simulation, simulate
from engine.params import GATES


@dataclass
class ViewResult:
    primary: Simulation  # the run whose backward sweep is streamed
    summary: dict
    checks: list[dict]
    figures: dict[str, Figure]
    series: dict = field(default_factory=dict)


def summarize(sim: Simulation) -> dict:
    trace = sim.trace
    norms = sim.grad_norms[-1]
    gamma = sim.gamma
    return {
        "cell": sim.config.cell,
        "loss": trace.loss,
        "overflow_step": sim.overflow_step,
        "forward_overflow_step": trace.overflow_step,
        "grad_overflow_step": trace.grad_overflow_step,
        "sigma_max": sim.sigma_max,
        "gamma": gamma,
        "gamma_sigma": None if gamma is None else gamma * sim.sigma_max[-1],
        "grad_norm_first": float(norms[0]),
        "grad_norm_last": float(norms[-1]),
        "clipping": sim.clipping,
    }


def check(check_id: str, label: str, status: str, detail: str) -> dict:
    assert status in ("pass", "fail", "n/a"), status
    return {"id": check_id, "label": label, "status": status, "detail": detail}


def paper_checks(sim: Simulation) -> list[dict]:
    """Claims from the theory, each turned green (pass) or red (fail) by the numbers just
    computed, or greyed out (n/a) where its premise does not hold."""
    checks = []
    norms = sim.grad_norms[-1]
    overflow = sim.overflow_step
    checks.append(check(
        "finite", "No overflow", "pass" if overflow is None else "fail",
        "every value finite" if overflow is None else f"overflowed at t = {overflow}"))
    if sim.gamma is None:
        rate = None
        for check_id, label in (("vanish", "γ·σ_max < 1 ⇒ the gradient must vanish"),
                                ("growth", "Growth only when γ·σ_max > 1"),
                                ("bound", "‖∂loss/∂hₜ‖ within the Pascanu bound")):
            checks.append(check(check_id, label, "n/a",
                                "rnn only: gated cells have no single γ"))
    else:
        rate = sim.gamma * sim.sigma_max[-1]
        first = norms[0]
        if rate < 1:
            bound_first = 10.0 ** sim.bound_log10[0] if sim.bound_log10 is not None else np.nan
            ok = bool(np.isfinite(first) and first <= bound_first * (1 + 1e-9))
            checks.append(check(
                "vanish", "γ·σ_max < 1 ⇒ the gradient must vanish", "pass" if ok else "fail",
                f"γ·σ_max = {rate:.3g}: ‖∂loss/∂h₀‖ = {first:.3g} ≤ bound {bound_first:.3g}"))
        else:
            checks.append(check("vanish", "γ·σ_max < 1 ⇒ the gradient must vanish", "n/a",
                                f"γ·σ_max = {rate:.3g} ≥ 1: vanishing is not forced"))
        # Judge growth on the Jacobian products ||d h_{T-1} / d h_t|| (sequence 0), not on the
        # loss gradient: with a loss at every step, h_0 collects T losses and h_{T-1} one, so the
        # gradient at t = 0 may exceed the last even while every product shrinks.
        largest = [float(np.max(layer)) if np.isfinite(layer).all() else float("inf")
                   for layer in sim.jacobian.norms]
        misfit = [grown > 1 + 1e-9 and sim.gamma * sigma <= 1
                  for grown, sigma in zip(largest, sim.sigma_max, strict=True)]
        checks.append(check(
            "growth", "Growth only when γ·σ_max > 1", "fail" if any(misfit) else "pass",
            f"largest ‖∂h_T/∂hₜ‖ = {max(largest):.3g} (products of Jacobians), "
            f"γ·σ_max = {rate:.3g}"))
        bound = sim.bound_log10
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(norms)
        finite = np.isfinite(logs) & np.isfinite(bound)
        within = bool(np.all(logs[finite] <= bound[finite] + 1e-9))
        checks.append(check(
            "bound", "‖∂loss/∂hₜ‖ within the Pascanu bound", "pass" if within else "fail",
            f"checked at {int(finite.sum())} of {len(norms)} steps (top layer)"))
    clip = sim.clipping
    if clip["threshold"] is None:
        checks.append(check("clip", "Clipped norm = min(norm, threshold)", "n/a",
                            "clipping is off"))
    else:
        expected = min(clip["norm"], clip["threshold"])
        ok = bool(np.isclose(clip["clipped_norm"], expected, rtol=1e-5))
        checks.append(check(
            "clip", "Clipped norm = min(norm, threshold)", "pass" if ok else "fail",
            f"norm {clip['norm']:.4g} → {clip['clipped_norm']:.4g} "
            f"(threshold {clip['threshold']:g})"))
    return checks


def explore_view(config: SimulationConfig) -> ViewResult:
    report("forward and backward pass", 0.0)
    sim = simulate(config)
    sweep_ready(sim.grad_norms)
    report("products of Jacobians and per-step contributions", 0.45)
    jac = sim.jacobian
    sim.contribution_norms  # noqa: B018 (computed here, so the progress report is true)
    checks = paper_checks(sim)
    report("figures", 0.8)
    return ViewResult(
        primary=sim,
        summary=summarize(sim),
        checks=checks,
        figures=explore_figures.build(sim),
        series={
            "grad_norms": sim.grad_norms,
            "bound_log10": sim.bound_log10,
            "jacobian": {"steps": jac.steps, "norms": jac.norms,
                         "window_start": jac.window_start},
            "contribution_norms": sim.contribution_norms,
        },
    )


# Gates run per view: compare runs all three cells, bptt the same network twice (full and
# truncated), cells shows an lstm when asked for an rnn. The work budget counts all of them.
def view_gates(config: SimulationConfig, view: str) -> int:
    if view == "compare":
        return sum(GATES.values())
    if view == "bptt":
        return 2 * GATES[config.cell]
    if view == "cells" and config.cell == "rnn":
        return GATES["lstm"]
    return GATES[config.cell]


def view_work(config: SimulationConfig, view: str) -> int:
    """Multiply-adds of the recurrence over every run the view makes: T * L * B * gates * H^2."""
    return (config.seq_len * config.num_layers * config.batch_size * view_gates(config, view)
            * config.hidden_size**2)


def budget_error(config: SimulationConfig, view: str) -> str | None:
    """None if the view's whole work fits WORK_BUDGET, else the message of the 422."""
    gates = view_gates(config, view)
    work = view_work(config, view)
    if work <= WORK_BUDGET:
        return None
    return (f"too much work for view {view!r}: seq_len x num_layers x batch_size x gates run x "
            f"hidden_size^2 = {config.seq_len} x {config.num_layers} x {config.batch_size} x "
            f"{gates} x {config.hidden_size}^2 = {work:,} exceeds the budget of "
            f"{WORK_BUDGET:,}; lower seq_len, hidden_size, batch_size or num_layers")


def view_builder(view: str) -> Callable[[SimulationConfig], ViewResult]:
    """The builder of a page's view: ``explore_view`` here, else ``view`` in
    ``app.figures.<view>`` (imported on first use, as those modules import this one)."""
    if view == "explore":
        return explore_view
    return importlib.import_module(f"app.figures.{view}").view
