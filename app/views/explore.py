"""The explorer's view (/explore): one run, its Jacobian products and per-step contributions."""

from __future__ import annotations

from gradient_flow_lab.app.figures import explore as explore_figures
from gradient_flow_lab.app.figures.common import log10_gaps
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import simulate
from gradient_flow_lab.app.views.chaos import exponent_summary, largest_exponent
from gradient_flow_lab.app.views.common import ViewResult, paper_checks, summarize


def view(config: SimulationConfig) -> ViewResult:
    report("forward and backward pass", 0.0)
    sim = simulate(config)
    sweep_ready(sim.grad_norms)
    report("products of Jacobians and per-step contributions", 0.45)
    jac = sim.jacobian
    sim.contribution_norms  # noqa: B018 (computed here, so the progress report is true)
    checks = paper_checks(sim)
    summary = summarize(sim)
    # λ₁ of the top layer (k = 1, O(T G H^2)) and what its sign says about the gradient
    T = sim.trace.seq_len  # λ₁ is averaged over the steps after a warm-up of T // 10
    summary.update(exponent_summary(largest_exponent(sim), T - T // 10))
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
