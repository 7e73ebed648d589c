"""The activations page's view (/activations): its numbers and figures for a depth n and a
starting point x0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradient_flow_lab.app.figures import activations as figures
from gradient_flow_lab.app.figures.common import Figure
from gradient_flow_lab.app.views import words
from gradient_flow_lab.engine import DERIVATIVE_BOUND, compose, grad_maxima, sigmoid_fixed_point


@dataclass
class ActivationsResult:
    summary: dict
    figures: dict[str, Figure]


def summarize(depth: int, x0: float) -> dict:
    """The numbers the page prints: the slope ceilings, and for each function the value and the
    chain product after n steps from x0 next to its best case (ceiling^n)."""
    figures.check_depth(depth)
    maxima = grad_maxima(figures.CURVE_X, ("sigmoid", "tanh"))
    chains = {}
    for name in ("sigmoid", "tanh"):
        values, products = compose(name, np.array([x0]), depth)  # (n + 1, 1) each
        chains[name] = {
            "value": float(values[depth, 0]),
            "grad_product": float(products[depth, 0]),
            "best_case": DERIVATIVE_BOUND[name] ** depth,
        }
    return {
        "status": chain_sentence(depth, x0, chains),
        "depth": depth,
        "x0": x0,
        "sigmoid_grad_max": maxima["sigmoid"],
        "tanh_grad_max": maxima["tanh"],
        "sigmoid_fixed_point": sigmoid_fixed_point(),
        "chains": chains,
    }


def _number(value: float) -> str:
    return f"{value:.2e}" if value and not 1e-3 <= abs(value) < 1e4 else f"{value:.3g}"


def paper_checks(summary: dict) -> list[dict]:
    """The page's two claims, judged on its summary (the same list shape as the simulation
    views' checks): the slope ceilings measured on the curves, and each chain's product of
    slopes within its ceiling to the power n."""
    sig, tanh = summary["chains"]["sigmoid"], summary["chains"]["tanh"]
    ceilings = (abs(summary["sigmoid_grad_max"] - 0.25) < 1e-3
                and abs(summary["tanh_grad_max"] - 1) < 1e-3)
    within = (sig["grad_product"] <= sig["best_case"] * (1 + 1e-9)
              and tanh["grad_product"] <= tanh["best_case"] * (1 + 1e-9))
    return [
        {"id": "slope_ceilings", "label": "Largest slope: σ′ = 0.25, tanh′ = 1",
         "status": "pass" if ceilings else "fail",
         "detail": f"measured on the curves: max σ′ = {summary['sigmoid_grad_max']:.4g}, "
                   f"max tanh′ = {summary['tanh_grad_max']:.4g}"},
        {"id": "chain_within_ceiling",
         "label": f"Slope product of {summary['depth']} steps ≤ 0.25ⁿ (σ) and ≤ 1 (tanh)",
         "status": "pass" if within else "fail",
         "detail": f"σ: {_number(sig['grad_product'])} ≤ {_number(sig['best_case'])}; "
                   f"tanh: {_number(tanh['grad_product'])} ≤ 1"},
    ]


def chain_sentence(depth: int, x0: float, chains: dict) -> str:
    """The status line: both products of slopes and which is larger, from the numbers."""
    if depth == 0:
        return "n = 0: nothing has been applied yet, so every product of slopes is 1."
    sig, tanh = chains["sigmoid"]["grad_product"], chains["tanh"]["grad_product"]
    steps = words.steps_text(depth)
    text = (f"After {steps} from x₀ = {x0:g}, the product of slopes is {words.sci(sig)} for "
            f"sigmoid (its best case 0.25^{depth} = {words.sci(0.25 ** depth)}) and "
            f"{words.sci(tanh)} for tanh")
    if not (sig > 0 and tanh > 0):
        return text + "."
    ratio = tanh / sig
    text += f": the tanh gradient is {words.ratio_words(ratio, 'the sigmoid one')}"
    if ratio < 1:
        text += " (from this saturated start tanh is the flatter of the two so far)"
    return text + "."


def build(depth: int, x0: float) -> ActivationsResult:
    return ActivationsResult(
        summary=summarize(depth, x0),
        figures={
            "curves": figures.curves_figure(),
            "iterates": figures.iterates_figure(depth, x0),
            "chain": figures.chain_figure(depth, x0),
            "spread": figures.spread_figure(depth, x0),
        },
    )
