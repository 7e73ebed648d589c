"""What every simulation view shares: its result type, the summary of a run and the paper
checks of the theory (each turned pass / fail / n/a by the numbers just computed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures.common import Figure, value_text
from gradient_flow_lab.app.simulation import Simulation
from gradient_flow_lab.app.views import words


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


def check(check_id: str, label: str, status: str, detail: str, kind: str = "theory") -> dict:
    """One check. ``kind`` says what a cross means: "theory", a claim that follows from the maths
    (a cross is a contradiction); "measured", a statement about this run's numbers (a preset's
    point, a comparison), which may be true or false for other settings."""
    assert status in ("pass", "fail", "n/a"), status
    assert kind in ("theory", "measured"), kind
    return {"id": check_id, "label": label, "status": status, "detail": detail, "kind": kind}


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
    # at t = 0 may exceed the last even while every product shrinks. The product at t = T-1 is
    # the identity (norm 1 whatever the weights), so it is left out: it judges nothing.
    jac = sim.jacobian
    T = sim.trace.seq_len
    real = jac.steps < T - 1  # (n,) the products of at least one Jacobian
    products = [layer[real] for layer in jac.norms]
    if overflow is not None or not all(np.isfinite(layer).all() for layer in products):
        checks.append(check("growth", GROWTH, "n/a",
                            "the run overflowed: the products of Jacobians are not numbers"
                            if overflow is not None else
                            "a product of Jacobians overflowed float64"))
    elif not real.any():
        checks.append(check("growth", GROWTH, "n/a",
                            f"T = {T}: the only product is ∂h_T−1/∂h_T−1, the identity, which "
                            "says nothing about growth"))
    else:
        largest = [float(np.max(layer)) for layer in products]
        misfit = [grown > 1 + RATE_TOLERANCE and sim.gamma * sigma <= 1 + RATE_TOLERANCE
                  for grown, sigma in zip(largest, sim.sigma_max, strict=True)]
        where = int(jac.steps[real][np.argmax(products[-1])])
        window = (f" (products over the last {T - jac.window_start} steps)"
                  if jac.window_start else "")
        checks.append(check(
            "growth", GROWTH, "fail" if any(misfit) else "pass",
            f"largest ‖∂h_T−1/∂hₜ‖ over t < T−1 = {max(largest):.3g} (at t = {where}"
            f"{window}), γ·σ_max = {rate:.3g}; grown means above 1 + {RATE_TOLERANCE:g}"))
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












# ---- what this run shows: the statements presets make, each true or false on the numbers -----

VANISHED = 1e-3  # "vanishes": at t = 0 less than this fraction of the gradient at the end is left
EXPLODED = 1e3  # "explodes": at t = 0 more than this many times the gradient at the end
# "near the edge of chaos": one step back multiplies by e^±EDGE_NATS, ×0.990 to ×1.010
EDGE_NATS = 0.01
LEVEL = "the gradient at step 0"


def travel_premise(sim: Simulation) -> str | None:
    """Why ‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖ is not one error's journey back, or None when it is."""
    cfg, T = sim.config, sim.trace.seq_len
    if T < 2:
        return "T = 1: there is no step to go back"
    if sim.overflow_step is not None:
        return f"the run overflowed at t = {sim.overflow_step}"
    if cfg.loss_at != "last":
        return (f"needs the loss at the last step only: with a loss at every step h₀ collects "
                f"all {T} losses and h_(T−1) just one, so their ratio is not one error's "
                "journey back")
    if cfg.truncation_or_none and cfg.truncation_or_none < T:
        return f"truncated BPTT (k = {cfg.truncation}) cuts the journey at every chunk start"
    return None


def travel_words(sim: Simulation) -> tuple[float, float, str]:
    """(ratio first / last, mean factor per step, the sentence: 'the gradient at step 0 is
    6.0×10⁻⁶⁷ of the one at the end: ×0.215 per step over 99 steps (‖∂loss/∂h₀‖ /
    ‖∂loss/∂h_T−1‖ = 6e-67)')."""
    norms = sim.grad_norms[-1]
    T = len(norms)
    ratio = engine.retention(norms)
    factor = float(ratio ** (1 / (T - 1))) if T > 1 and np.isfinite(ratio) else float("nan")
    text = (f"{LEVEL} is {words.ratio_words(ratio, 'the one at the end')}: "
            f"{words.factor_text(factor)} per step on average over {words.steps_text(T - 1)} "
            f"(‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖ = {ratio:.3g})")
    return ratio, factor, text


def run_checks(sim: Simulation, largest: float) -> list[dict]:
    """What this run shows, as the presets state it: vanishing, exploding, the edge of chaos,
    clipping at work, an overflow found. Each is "measured": true or false for these settings,
    n/a where its premise fails. ``largest``: λ₁ of the top layer (nats per step)."""
    checks = []
    premise = travel_premise(sim)
    vanish_label = (f"This run: the gradient vanishes going back (at t = 0 under "
                    f"{words.sci(VANISHED)} of the one at the end)")
    explode_label = (f"This run: the gradient explodes going back (at t = 0 over "
                     f"{words.sci(EXPLODED)} times the one at the end)")
    low, high = np.exp(-EDGE_NATS), np.exp(EDGE_NATS)
    edge_label = (f"This run: near the edge of chaos (each step back multiplies the gradient by "
                  f"×{low:.3f} to ×{high:.3f}, |λ₁| < {EDGE_NATS:g})")
    if premise is not None:
        for check_id, label in (("vanishes", vanish_label), ("explodes", explode_label),
                                ("edge", edge_label)):
            checks.append(check(check_id, label, "n/a", premise, "measured"))
    else:
        ratio, factor, text = travel_words(sim)
        if not np.isfinite(ratio):
            for check_id, label in (("vanishes", vanish_label), ("explodes", explode_label)):
                checks.append(check(check_id, label, "n/a", text, "measured"))
        else:
            checks.append(
                check("vanishes", vanish_label, "pass" if ratio < VANISHED else "fail", text,
                      "measured") if ratio < 1 else
                check("vanishes", vanish_label, "n/a", f"it does not shrink going back: {text}",
                      "measured"))
            checks.append(
                check("explodes", explode_label, "pass" if ratio > EXPLODED else "fail", text,
                      "measured") if ratio > 1 else
                check("explodes", explode_label, "n/a", f"it does not grow going back: {text}",
                      "measured"))
        if not np.isfinite(largest):
            checks.append(check("edge", edge_label, "n/a",
                                "λ₁ is −∞ or not a number" + f"; {text}", "measured"))
        else:
            lyap = float(np.exp(largest))
            inside = [bool(low <= value <= high) for value in (lyap, factor)]
            checks.append(check(
                "edge", edge_label, "pass" if all(inside) else "fail",
                f"λ₁ = {largest:.3g} nats: {words.factor_text(lyap)} per step, "
                f"{'inside' if inside[0] else 'outside'} the band; measured on the gradient: "
                f"{words.factor_text(factor)} per step, "
                f"{'inside' if inside[1] else 'outside'}".replace("-", "−"),
                "measured"))
    clip = sim.clipping
    clip_label = "This run: clipping cut the gradient's length to the threshold"
    if clip["threshold"] is None:
        checks.append(check("clipped", clip_label, "n/a", "clipping is off", "measured"))
    elif not np.isfinite(clip["norm"]):
        checks.append(check("clipped", clip_label, "n/a",
                            "‖∂loss/∂θ‖ is not a number: there is no length to cut", "measured"))
    else:
        cut = clip["norm"] > clip["threshold"]
        ok = cut and bool(np.isclose(clip["clipped_norm"], clip["threshold"], rtol=1e-5))
        checks.append(check(
            "clipped", clip_label, "pass" if ok else "fail",
            (f"‖∂loss/∂θ‖ (all weights) = {words.sci(clip['norm'], 3)} was cut to "
             f"{words.sci(clip['clipped_norm'], 3)}, the threshold {clip['threshold']:g}, "
             "keeping its direction") if cut else
            (f"‖∂loss/∂θ‖ (all weights) = {words.sci(clip['norm'], 3)} is already within the "
             f"threshold {clip['threshold']:g}: clipping leaves it as it is"), "measured"))
    checks.append(overflow_check(sim))
    return checks


def overflow_check(sim: Simulation) -> dict:
    """The overflow preset's point: where the run leaves float64 is found, and a loss that is
    not a number leaves no gradient that pretends to be one."""
    label = ("This run: it overflows float64 at a step the page names, and no gradient "
             "pretends to be a number")
    step = sim.overflow_step
    if step is None:
        return check("overflow", label, "n/a", "nothing overflowed: every value is finite",
                     "measured")
    norms = sim.grad_norms
    finite = int(np.isfinite(norms).sum())
    loss_finite = bool(np.isfinite(sim.trace.loss))
    where = ("the forward pass" if sim.trace.overflow_step == step else "the backward pass")
    ok = loss_finite or finite == 0
    return check("overflow", label, "pass" if ok else "fail",
                 f"{where} left float64 at t = {step}; the loss is "
                 f"{'a number' if loss_finite else 'not a number'}, and {finite} of "
                 f"{norms.size} values of ‖∂loss/∂hₜ‖ are finite", "measured")
