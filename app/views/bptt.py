"""The BPTT page's view (/bptt): full backpropagation through time against truncated BPTT.

The page's configuration runs twice on the same weights and the same data: once with full BPTT
(truncation 0) and once truncated to chunks of k steps (the configured truncation, or
``DEFAULT_TRUNCATION`` when that is 0). The full run is the primary one: its backward sweep is
what the stream sends and what the unrolled-network picture animates.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures import bptt as figures
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views.common import ViewResult, check, paper_checks, summarize
from gradient_flow_lab.engine.diagnostics import step_jacobian_norms
from gradient_flow_lab.engine.params import GATES

DEFAULT_TRUNCATION = 10  # the k compared against when the configuration asks for full BPTT


# loss_reach pushes one upstream gradient per loss step back through the whole sequence: keep
# N * T * L * G * H^2 (multiply-adds, per run) near one simulation's work budget.
REACH_WORK = 250_000_000


def stream_meta(config: SimulationConfig) -> dict:
    """What the stream's ``meta`` event adds for this page: the steps the unrolled network draws
    as columns, so the page lights up the server's columns during the sweep."""
    return {"unrolled_steps": figures.unrolled_columns(config.seq_len).tolist()}


def reach_check(reach: engine.LossReach, seq_len: int, k: int, overflow: int | None) -> dict:
    """Pass when every d L_t / d h_s of the truncated run outside t's chunk is exactly 0."""
    label = f"Truncated gradient reaches back at most k = {k} steps"
    if reach.norms.shape[0] == 0:
        return check("truncation_reach", label, "n/a", "no step carries a loss")
    if overflow is not None:
        return check("truncation_reach", label, "n/a",
                     f"the truncated run overflowed at t = {overflow}")
    inside = engine.reach_band(reach.loss_steps, seq_len, k)[:, None, :]  # (N, 1, T)
    outside = np.where(inside, 0.0, reach.norms)  # (N, L, T)
    leaks = int(np.count_nonzero(outside))
    touched = (reach.norms > 0) & ~np.isnan(reach.norms)  # (N, L, T)
    depth = reach.loss_steps[:, None, None] - np.arange(seq_len)[None, None, :]
    longest = int(np.max(np.where(touched, depth, -1)))
    detail = (f"over {len(reach.loss_steps)} loss steps, the longest reach is {longest} "
              f"step{'s' if longest != 1 else ''} back: L_t touches h_(t−{longest}) at the earliest"
              if longest >= 0 else "no gradient reached any state")
    if leaks:
        detail = f"{leaks} entries outside the band are non-zero; " + detail
    return check("truncation_reach", label, "fail" if leaks or longest >= k else "pass", detail)


def growth_premise(item: dict, config: SimulationConfig) -> dict:
    """The growth check compares ||d loss / d h_0|| with ||d loss / d h_{T-1}||: a statement
    about one error travelling back. With a loss at every step, h_0 collects all T losses and
    h_{T-1} only one, so a larger early gradient is no sign of growth: the check does not apply.
    """
    if item["id"] != "growth" or config.loss_at != "all" or item["status"] == "n/a":
        return item
    return check("growth", item["label"], "n/a",
                 "needs the loss at the last step only: with a loss at every step, h₀ "
                 f"collects all {config.seq_len} losses and h_(T−1) just one ({item['detail']})")


UPDATE_LR = 0.1  # the learning rate of the one update the "update" check makes


def update_check(sim: Simulation) -> dict:
    """Step 5 of BPTT made visible: every weight moves once by -lr * its gradient (clipped when
    clipping is on) and the same inputs run again; pass when the loss went down."""
    label = f"One update W ← W − {UPDATE_LR:g}·∂E/∂W lowers the loss"
    trace, coef = sim.trace, sim.clipping["coef"]
    if sim.overflow_step is not None or not np.isfinite(coef):
        return check("update", label, "n/a", "the run overflowed: no finite gradient to step along")
    moved = {key: UPDATE_LR * coef * grad for key, grad in trace.grads.items()}
    after = engine.run(sim.config.cell, {key: p - moved[key] for key, p in sim.params.items()},
                       trace.inputs, trace.targets, nonlinearity=trace.nonlinearity,
                       truncation=trace.truncation, loss=trace.loss_kind).loss
    top = f"weight_hh_l{trace.num_layers - 1}"
    clipped = (f" (the gradient clipped from {sim.clipping['norm']:.3g} to "
               f"{sim.clipping['clipped_norm']:.3g})" if coef < 1 else "")
    ok = bool(np.isfinite(after) and after < trace.loss)
    return check("update", label, "pass" if ok else "fail",
                 f"loss {trace.loss:.4g} → {after:.4g}{clipped}; W_hh moved by "
                 f"{float(np.linalg.norm(moved[top])):.3g} (its norm is {float(np.linalg.norm(sim.params[top])):.3g})")


def view(config: SimulationConfig) -> ViewResult:
    k = config.truncation or DEFAULT_TRUNCATION
    report("full BPTT: forward and backward pass", 0.0)
    full = simulate(config.model_copy(update={"truncation": 0}))
    sweep_ready(full.grad_norms)
    report(f"truncated BPTT (k = {k}): forward and backward pass", 0.25)
    trunc = simulate(config.model_copy(update={"truncation": k}))
    report("how far back each loss reaches", 0.5)
    T = full.trace.seq_len
    layer = full.trace.num_layers - 1
    per_loss_step = T * full.trace.num_layers * GATES[config.cell] * config.hidden_size**2
    loss_steps = int(np.clip(REACH_WORK // max(per_loss_step, 1), 8, 64))
    full_reach = engine.loss_reach(full.trace, max_loss_steps=loss_steps)
    trunc_reach = engine.loss_reach(trunc.trace, max_loss_steps=loss_steps)

    g_full, g_trunc = full.trace.grads, trunc.trace.grads
    recurrent = [key for key in g_full if key.startswith("weight_hh")]
    columns = figures.unrolled_columns(T)
    summary = {
        **summarize(full),
        "truncation_k": k,
        "truncation_requested": config.truncation,
        "truncation_defaulted": config.truncation == 0,
        "truncation_is_exact": k >= T,
        "chunks": -(-T // k),
        "relative_error": engine.relative_difference(g_trunc, g_full),
        "relative_error_whh": engine.relative_difference(
            {key: g_trunc[key] for key in recurrent}, {key: g_full[key] for key in recurrent}),
        "cosine": engine.cosine(g_trunc, g_full),
        "grad_global_norm_full": engine.global_norm(g_full),
        "grad_global_norm_truncated": engine.global_norm(g_trunc),
        "truncated_overflow_step": trunc.overflow_step,
        "unrolled_columns": len(columns),
        "unrolled_subsampled": len(columns) < T,
        "reach_layer": layer,
    }
    checks = [growth_premise(c, config) for c in paper_checks(full)]
    checks.append(reach_check(trunc_reach, T, k, trunc.overflow_step))
    checks.append(update_check(full))
    report("the factor of each step back", 0.8)
    factors = step_jacobian_norms(full.trace, layer)  # (T,), nan at t = 0
    summary["factor_layer"] = layer
    summary["factor_state"] = "(h, c)" if config.cell == "lstm" else "h"
    report("figures", 0.85)
    drawn = {
        "unrolled": figures.unrolled_figure(full, k),
        "reach": figures.reach_figure(full_reach, trunc_reach, T, k, layer),
        "contributions": figures.contribution_figure(full, trunc, k),
        "grad_norms": figures.grad_norm_figure(full, trunc, k),
        "factors": figures.factor_figure(factors, layer),
    }
    series = {
        "grad_norms_full": full.grad_norms,
        "grad_norms_truncated": trunc.grad_norms,
        "contribution_norms_full": full.contribution_norms,
        "contribution_norms_truncated": trunc.contribution_norms,
        "unrolled_steps": columns,
        # ||J_t|| of the top layer; None where not computed (t = 0 has no step before it)
        "step_factors": [float(v) if np.isfinite(v) else None for v in factors],
        "reach_full": figures.strided_reach(full_reach, layer),
        "reach_truncated": figures.strided_reach(trunc_reach, layer),
    }
    return ViewResult(primary=full, summary=summary, checks=checks, figures=drawn,
                      series=series)
