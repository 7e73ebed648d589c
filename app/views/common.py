"""What every simulation view shares: its result type, the summary of a run and the paper
checks of the theory (each turned pass / fail / n/a by the numbers just computed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures.common import Figure, value_text
from gradient_flow_lab.app.simulation import Simulation


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
        # first / last, computed here (null when not a number): the page never divides nulls
        "retention": engine.retention(norms),
        "clipping": sim.clipping,
    }


def check(check_id: str, label: str, status: str, detail: str) -> dict:
    assert status in ("pass", "fail", "n/a"), status
    return {"id": check_id, "label": label, "status": status, "detail": detail}


VANISH = "γ·σ_max < 1 ⇒ the gradient must vanish"
GROWTH = "Growth only when γ·σ_max > 1"
BOUND = "‖∂loss/∂hₜ‖ within the Pascanu bound"
# γ·σ_max within this of 1 counts as the boundary, where neither vanishing nor growth is forced;
# a Jacobian product counts as grown when it exceeds 1 by more than this (rounding of exact 1s).
RATE_TOLERANCE = 1e-9


def _rate_checks(sim: Simulation, norms: np.ndarray, overflow: int | None) -> list[dict]:
    """The three rnn claims about γ·σ_max. Each is n/a when its evidence is empty or its premise
    fails; after an overflow the products of Jacobians are not numbers, so they judge nothing."""
    rate = sim.gamma * sim.sigma_max[-1]
    bound = sim.bound_log10  # (T,) log10
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms)  # -inf for an exact 0
    checks = []
    if overflow is not None:
        checks.append(check("vanish", VANISH, "n/a", f"the run overflowed at t = {overflow}"))
    elif rate < 1 - RATE_TOLERANCE:
        first, first_bound = float(logs[0]), float(bound[0])
        ok = bool(first == -np.inf or first <= first_bound + RATE_TOLERANCE)
        checks.append(check(
            "vanish", VANISH, "pass" if ok else "fail",
            f"γ·σ_max = {rate:.3g}: ‖∂loss/∂h₀‖ = {value_text(first)} ≤ bound "
            f"{value_text(first_bound)}"))
    elif rate <= 1 + RATE_TOLERANCE:
        checks.append(check("vanish", VANISH, "n/a",
                            f"γ·σ_max = {rate:.10g}: at the boundary 1 (within "
                            f"{RATE_TOLERANCE:g}) neither vanishing nor growth is forced"))
    else:
        checks.append(check("vanish", VANISH, "n/a",
                            f"γ·σ_max = {rate:.3g} > 1: vanishing is not forced"))
    # Judge growth on the Jacobian products ||d h_{T-1} / d h_t|| (sequence 0), not on the loss
    # gradient: with a loss at every step, h_0 collects T losses and h_{T-1} one, so the gradient
    # at t = 0 may exceed the last even while every product shrinks.
    products = sim.jacobian.norms
    if overflow is not None or not all(np.isfinite(layer).all() for layer in products):
        checks.append(check("growth", GROWTH, "n/a",
                            "the run overflowed: the products of Jacobians are not numbers"
                            if overflow is not None else
                            "a product of Jacobians overflowed float64"))
    elif not any(layer.size for layer in products):
        checks.append(check("growth", GROWTH, "n/a", "no product of Jacobians to judge"))
    else:
        largest = [float(np.max(layer)) for layer in products]
        misfit = [grown > 1 + RATE_TOLERANCE and sim.gamma * sigma <= 1 + RATE_TOLERANCE
                  for grown, sigma in zip(largest, sim.sigma_max, strict=True)]
        checks.append(check(
            "growth", GROWTH, "fail" if any(misfit) else "pass",
            f"largest ‖∂h_T−1/∂hₜ‖ = {max(largest):.3g} (products of Jacobians), "
            f"γ·σ_max = {rate:.3g}; grown means above 1 + {RATE_TOLERANCE:g}"))
    # Exact zeros are compared too (log10 0 = -inf, within any bound); inf or nan are not.
    comparable = ~np.isnan(logs) & ~np.isposinf(logs) & ~np.isnan(bound)
    if not comparable.any():
        checks.append(check("bound", BOUND, "n/a",
                            f"no step of {len(norms)} has a finite gradient to compare"))
    else:
        within = bool(np.all(logs[comparable] <= bound[comparable] + RATE_TOLERANCE))
        checks.append(check(
            "bound", BOUND, "pass" if within else "fail",
            f"checked at {int(comparable.sum())} of {len(norms)} steps (top layer)"))
    return checks


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
        for check_id, label in (("vanish", VANISH), ("growth", GROWTH), ("bound", BOUND)):
            checks.append(check(check_id, label, "n/a",
                                "rnn only: gated cells have no single γ"))
    else:
        checks += _rate_checks(sim, norms, overflow)
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










