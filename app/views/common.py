"""What every simulation view shares: its result type, the summary of a run and the paper
checks of the theory (each turned pass / fail / n/a by the numbers just computed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradient_flow_lab.app.figures.common import Figure
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










