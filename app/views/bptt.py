"""The BPTT page's view (/bptt): full backpropagation through time against truncated BPTT.

The page's configuration runs with full BPTT and, when its truncation k is not 0, a second time
truncated to chunks of k steps, on the same weights and the same data. Truncation 0 means full
BPTT and nothing else: no truncated curve is drawn and nothing is compared. The full run is the
primary one: its backward sweep is what the stream sends and what the unrolled-network picture
animates. The captions that depend on the numbers (which steps lose their terms, where the
truncated gradient drops) are sentences built here.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures import bptt as figures
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views import words
from gradient_flow_lab.app.views.common import ViewResult, check, paper_checks, summarize
from gradient_flow_lab.engine.diagnostics import step_jacobian_norms
from gradient_flow_lab.engine.params import GATES

# The k the /bptt page's control opens with (its field default). A request with truncation 0 is
# full BPTT alone: this is never substituted for it.
DEFAULT_TRUNCATION = 10

# loss_reach pushes one upstream gradient per loss step back through the whole sequence: keep
# N * T * L * G * H^2 (multiply-adds, per run) near one simulation's work budget.
REACH_WORK = 250_000_000


def stream_meta(config: SimulationConfig) -> dict:
    """What the stream's ``meta`` event adds for this page: the steps the unrolled network draws
    as columns, so the page lights up the server's columns during the sweep."""
    return {"unrolled_steps": figures.unrolled_columns(config.seq_len).tolist()}


def reach_check(reach: engine.LossReach | None, seq_len: int, k: int | None,
                overflow: int | None) -> dict:
    """Pass when every d L_t / d h_s of the truncated run outside t's chunk is exactly 0."""
    if reach is None or k is None:
        return check("truncation_reach", "Truncated gradient reaches back at most k steps",
                     "n/a", "truncation is off (k = 0): this is full BPTT, nothing is cut")
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
                 f"{float(np.linalg.norm(moved[top])):.3g} (its norm is "
                 f"{float(np.linalg.norm(sim.params[top])):.3g})")


def _kept(full: float, truncated: float) -> str:
    return f"{words.sci(full, 3)} → {words.sci(truncated, 3)}"


def contribution_sentence(full: np.ndarray, truncated: np.ndarray | None, k: int | None) -> str:
    """Which steps' terms of ∂loss/∂W_hh truncation changes, and by how much, from the numbers
    (top layer, (T,) each). Compares the first step of each chunk that a cut follows with the
    last step before that cut, and names the steps that lose their whole term."""
    T = len(full)
    if truncated is None or k is None:
        return ("Truncation is off (k = 0): this is full BPTT, one term per step, and no "
                "truncated curve is drawn.")
    if k >= T:
        return (f"k = {k} ≥ T = {T}: one chunk holds the whole sequence, so every term is "
                "exactly full BPTT's.")
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = truncated / full  # (T,), nan where full is 0 (t = 0: h₋₁ = 0) or not a number
    lost = np.flatnonzero((truncated == 0) & (full > 0))
    ends = np.arange(k - 1, T - 1, k)  # the last step of each chunk a cut follows
    # the first step of each such chunk, t = 1 for the first one (t = 0's term is always 0)
    starts = np.maximum(ends - (k - 1), 1)
    shown = [int(end) for end in ends if full[end] > 0]  # the first cut with a term before it
    example = ("" if not shown else
               f" (first cut: t = {shown[0]}, {_kept(full[shown[0]], truncated[shown[0]])}; "
               f"t = {shown[0] + 1}, {_kept(full[shown[0] + 1], truncated[shown[0] + 1])})")
    if lost.size:
        span = (f"t = {lost[0]}" if lost.size == 1 else
                f"the {lost.size} steps from t = {lost[0]} to t = {lost[-1]}")
        return (f"Here {span} lose their whole term: no loss inside their chunk reaches them, "
                f"and none beyond a cut{example}.")
    end_kept = kept[ends][np.isfinite(kept[ends])]
    start_kept = kept[starts][np.isfinite(kept[starts])]
    if not end_kept.size:
        return ("No step before a cut has a term to compare here (t = 0's term is 0: it "
                "multiplies h₋₁ = 0).")
    if k == 1:
        return (f"With k = 1 every step keeps only its own loss's share: the median term keeps "
                f"{_share(float(np.median(end_kept)))} of its full-BPTT size{example}.")
    if not start_kept.size:
        return (f"Here the last step before a cut keeps {_share(float(np.median(end_kept)))} of "
                f"its full-BPTT term{example}.")
    first, last = float(np.median(start_kept)), float(np.median(end_kept))
    if abs(np.log(last) - np.log(first)) < 0.01:
        verdict = "every step keeps about the same share of its term"
    elif last < first:
        verdict = ("the steps just before a cut lose the most: the losses beyond the cut no "
                   "longer reach them, while the first step of a chunk still collects all the "
                   "chunk's losses")
    else:
        verdict = "the first steps of a chunk lose the most"
    return (f"Here the first step of a chunk keeps {_share(first)} of its full-BPTT term and the "
            f"last step before a cut {_share(last)} (medians over the cuts): {verdict}"
            f"{example}.")


def _share(ratio: float) -> str:
    """A kept share: '75%', '100%', or '1.0×10⁻⁵' when tiny."""
    return f"{ratio:.0%}" if 0.005 <= ratio < 100 else words.sci(ratio)


def grad_norm_sentence(full: np.ndarray, truncated: np.ndarray | None, k: int | None) -> str:
    """What the truncated ‖∂loss/∂hₜ‖ does at the cuts, from the numbers (top layer, (T,))."""
    T = len(full)
    if truncated is None or k is None:
        return "Truncation is off (k = 0): only full BPTT is drawn."
    if k >= T:
        return f"k = {k} ≥ T = {T}: no cut, the two curves are the same."
    step = k - 1  # going back, the first step past the first cut
    lost = np.flatnonzero((truncated == 0) & (full > 0))
    if lost.size:
        return (f"Left of a cut the truncated gradient is exactly 0 at {lost.size} steps "
                f"(t = {lost[0]} to {lost[-1]}): no loss in those chunks, and nothing crosses a "
                f"cut. At t = {step} full BPTT has {words.sci(full[step], 3)}.")
    return (f"Going back across the first cut, at t = {step}, the truncated gradient drops to "
            f"{words.sci(truncated[step], 3)} (full BPTT: {words.sci(full[step], 3)}): only the "
            "losses of its own chunk are left.")


def comparison_sentence(summary: dict) -> str:
    """How far apart the truncated and the full weight gradients point, in words, from the
    cosine and the relative error (thresholds stated)."""
    k, T = summary["truncation_k"], summary["seq_len"]
    if k is None:
        return ("Truncation is off (k = 0): this is full BPTT alone. Set k to compare it with "
                "truncated BPTT on the same weights and data.")
    if k >= T:
        return (f"k = {k} ≥ T = {T}: one chunk holds the whole sequence, so truncated BPTT is "
                "exactly full BPTT here.")
    cosine, error = summary["cosine"], summary["relative_error"]
    if not (np.isfinite(cosine) and np.isfinite(error)):
        return "The two gradients cannot be compared: one of them is not a number (overflow)."
    off = (f"it is off by {words.sci(error)} of the full gradient's length (relative error "
           "‖g_trunc − g_full‖ / ‖g_full‖)")
    if cosine > 0.99:
        way = f"points almost the same way as the full one (cosine {cosine:.4f}, above 0.99)"
    elif cosine > 0:
        way = (f"points noticeably away from the full one (cosine {cosine:.3g}; 1 is the same "
               "direction, 0 a right angle)")
    else:
        way = (f"points at a right angle to the full one or further away (cosine "
               f"{cosine:.3g}): a step along it does not go where full BPTT's would")
    return f"The truncated gradient {way}; {off}."


def view(config: SimulationConfig) -> ViewResult:
    k = config.truncation_or_none  # None: full BPTT only, nothing to compare
    report("full BPTT: forward and backward pass", 0.0)
    full = simulate(config.model_copy(update={"truncation": 0}))
    sweep_ready(full.grad_norms)
    trunc = None
    if k is not None:
        report(f"truncated BPTT (k = {k}): forward and backward pass", 0.25)
        trunc = simulate(config)
    report("how far back each loss reaches", 0.5)
    T = full.trace.seq_len
    layer = full.trace.num_layers - 1
    per_loss_step = T * full.trace.num_layers * GATES[config.cell] * config.hidden_size**2
    loss_steps = int(np.clip(REACH_WORK // max(per_loss_step, 1), 8, 64))
    full_reach = engine.loss_reach(full.trace, max_loss_steps=loss_steps)
    trunc_reach = (None if trunc is None else
                   engine.loss_reach(trunc.trace, max_loss_steps=loss_steps))

    columns = figures.unrolled_columns(T)
    summary = {
        **summarize(full),
        "truncation_k": k,
        "truncation_requested": config.truncation,
        "truncation_off": k is None,
        "truncation_is_exact": k is not None and k >= T,
        "chunks": 1 if k is None else -(-T // k),
        "grad_global_norm_full": engine.global_norm(full.trace.grads),
        "unrolled_columns": len(columns),
        "unrolled_subsampled": len(columns) < T,
        "reach_layer": layer,
    }
    if trunc is not None:
        g_full, g_trunc = full.trace.grads, trunc.trace.grads
        recurrent = [key for key in g_full if key.startswith("weight_hh")]
        summary.update({
            "relative_error": engine.relative_difference(g_trunc, g_full),
            "relative_error_whh": engine.relative_difference(
                {key: g_trunc[key] for key in recurrent},
                {key: g_full[key] for key in recurrent}),
            "cosine": engine.cosine(g_trunc, g_full),
            "grad_global_norm_truncated": engine.global_norm(g_trunc),
            "truncated_overflow_step": trunc.overflow_step,
        })
    else:
        summary.update({"relative_error": None, "relative_error_whh": None, "cosine": None,
                        "grad_global_norm_truncated": None, "truncated_overflow_step": None})
    summary["seq_len"] = T
    summary["comparison_sentence"] = comparison_sentence(summary)
    checks = [growth_premise(c, config) for c in paper_checks(full)]
    checks.append(reach_check(trunc_reach, T, k, None if trunc is None else trunc.overflow_step))
    checks.append(update_check(full))
    report("the factor of each step back", 0.8)
    factors = step_jacobian_norms(full.trace, layer)  # (T,), nan at t = 0
    summary["factor_layer"] = layer
    summary["factor_state"] = "(h, c)" if config.cell == "lstm" else "h"
    summary["contribution_sentence"] = contribution_sentence(
        full.contribution_norms[-1], None if trunc is None else trunc.contribution_norms[-1], k)
    summary["grad_norm_sentence"] = grad_norm_sentence(
        full.grad_norms[-1], None if trunc is None else trunc.grad_norms[-1], k)
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
        "grad_norms_truncated": None if trunc is None else trunc.grad_norms,
        "contribution_norms_full": full.contribution_norms,
        "contribution_norms_truncated": None if trunc is None else trunc.contribution_norms,
        "unrolled_steps": columns,
        # ||J_t|| of the top layer; None where not computed (t = 0 has no step before it)
        "step_factors": [float(v) if np.isfinite(v) else None for v in factors],
        "reach_full": figures.strided_reach(full_reach, layer),
        "reach_truncated": (None if trunc_reach is None else
                            figures.strided_reach(trunc_reach, layer)),
    }
    return ViewResult(primary=full, summary=summary, checks=checks, figures=drawn,
                      series=series)
