"""Figures of the comparison page (/compare): rnn, lstm and gru on the same input.

Every cell runs with the page's configuration and the same seed, so the inputs and targets are
identical (the weights differ in shape, so they cannot be shared). The rnn run is the primary one:
its backward sweep is what the stream sends while the page waits.
"""

from __future__ import annotations

import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

import engine
from app.figures.common import CELL_COLOURS, Figure, base_layout, figure, positive_or_none
from app.progress import report, sweep_ready
from app.schemas import SimulationConfig
from app.simulation import Simulation, simulate
from app.views import ViewResult, check, summarize

CELLS = ("rnn", "lstm", "gru")


def cell_configs(config: SimulationConfig) -> dict[str, SimulationConfig]:
    """The configuration once per cell, each validated again, so the work budget holds for the
    lstm's four gate blocks too (a 422 naming the budget, not a slow request)."""
    try:
        return {cell: SimulationConfig.model_validate({**config.model_dump(), "cell": cell})
                for cell in CELLS}
    except ValidationError as error:
        errors = [{**e, "msg": f"the comparison also runs an lstm (4 gate blocks): {e['msg']}"}
                  for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from error


def retention(sim: Simulation) -> float:
    """||d loss / d h_0|| / ||d loss / d h_{T-1}|| of the top layer: how much of the gradient at
    the last step is still there at the first (nan if either is 0 or not finite)."""
    norms = sim.grad_norms[-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = float(norms[0] / norms[-1])
    return ratio if np.isfinite(ratio) else float("nan")


def grad_norm_figure(sims: dict[str, Simulation]) -> Figure:
    """||d loss / d h_t|| (top layer) against t, one line per cell; the lstm's cell-state
    gradient ||d loss / d c_t|| dashed, since that is the path that carries it far back."""
    data = []
    for cell, sim in sims.items():
        steps = np.arange(sim.trace.seq_len)
        data.append(dict(type="scatter", 
            x=steps, y=positive_or_none(sim.grad_norms[-1]), mode="lines", name=cell,
            line=dict(color=CELL_COLOURS[cell], width=2.5),
            hovertemplate="t = %{x}<br>‖∂loss/∂h_t‖ = %{y:.3e}<extra>" + cell + "</extra>"))
        cell_norms = engine.cell_grad_norms(sim.trace)  # (L, T) for lstm, else None
        if cell_norms is not None:
            data.append(dict(type="scatter", 
                x=steps, y=positive_or_none(cell_norms[-1]), mode="lines",
                name=f"{cell} cell state ‖∂loss/∂cₜ‖",
                line=dict(color=CELL_COLOURS[cell], width=1.5, dash="dot"),
                hovertemplate="t = %{x}<br>‖∂loss/∂c_t‖ = %{y:.3e}<extra>" + cell
                + " cell state</extra>"))
    layout = base_layout("Gradient norm ‖∂loss/∂hₜ‖ at each step, per cell (top layer)",
                         "time step t", "‖∂loss/∂hₜ‖ (log)", log_y=True, height=380)
    return figure(data, layout)


def retention_figure(sims: dict[str, Simulation]) -> Figure:
    """A bar per cell hanging down from 0: log10 of ||d loss / d h_0|| / ||d loss / d h_{T-1}||,
    the orders of magnitude the gradient loses between the last step and the first (bars on a
    log axis would start at an arbitrary floor and mislead)."""
    cells = list(sims)
    ratios = np.array([retention(sims[cell]) for cell in cells])
    with np.errstate(divide="ignore", invalid="ignore"):
        orders = np.log10(ratios)
    orders = np.where(np.isfinite(orders), orders, np.nan)
    labels = [f"{r:.2e}" if np.isfinite(r) and r > 0 else "not finite" for r in ratios]
    data = [dict(type="bar", 
        x=cells, y=orders, text=labels, textposition="outside", cliponaxis=False,
        marker=dict(color=[CELL_COLOURS[cell] for cell in cells]), name="first / last",
        customdata=ratios,
        hovertemplate="%{x}: ‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖ = %{customdata:.3e}<extra></extra>")]
    layout = base_layout("Gradient left at t = 0, relative to the last step", "cell",
                         "log₁₀(first / last)", height=340)
    layout["showlegend"] = False
    layout["yaxis"]["zeroline"] = True
    layout["yaxis"]["zerolinecolor"] = "#555555"
    return figure(data, layout)


def keeps_more_check(sims: dict[str, Simulation], cell: str) -> dict:
    label = f"{cell.upper()} keeps more gradient than the plain RNN at t = 0"
    mine, plain = retention(sims[cell]), retention(sims["rnn"])
    if not (np.isfinite(mine) and np.isfinite(plain)):
        return check(f"{cell}_keeps_more", label, "n/a",
                     "a ratio is not finite (zero gradient or overflow)")
    return check(f"{cell}_keeps_more", label, "pass" if mine > plain else "fail",
                 f"‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖: {cell} {mine:.3g}, rnn {plain:.3g}")


def view(config: SimulationConfig) -> ViewResult:
    sims = {}
    # Fractions by each cell's share of the work: rnn 1, lstm 4 and gru 3 gate blocks.
    for (cell, cell_config), fraction in zip(cell_configs(config).items(), (0.0, 0.1, 0.5),
                                             strict=True):
        report(f"{cell}: forward and backward pass", fraction)
        sims[cell] = simulate(cell_config)
        if cell == "rnn":  # the stream's sweep is the rnn's (the view's primary run)
            sweep_ready(sims[cell].grad_norms)
    report("figures", 0.85)
    cells = {}
    for cell, sim in sims.items():
        cells[cell] = {**summarize(sim), "retention": retention(sim)}
    overflowed = {cell: s["overflow_step"] for cell, s in cells.items()
                  if s["overflow_step"] is not None}
    summary = {
        "cells": cells,
        "overflow_step": min(overflowed.values()) if overflowed else None,
        "overflow_cells": sorted(overflowed),
        "seq_len": config.seq_len,
    }
    checks = [check("finite", "No overflow in any cell", "fail" if overflowed else "pass",
                    "every value finite" if not overflowed else
                    ", ".join(f"{cell} at t = {step}" for cell, step in overflowed.items()))]
    checks += [keeps_more_check(sims, "lstm"), keeps_more_check(sims, "gru")]
    return ViewResult(
        primary=sims["rnn"],
        summary=summary,
        checks=checks,
        figures={"grad_norms": grad_norm_figure(sims), "retention": retention_figure(sims)},
        series={"grad_norms": {cell: sim.grad_norms[-1] for cell, sim in sims.items()},
                "retention": {cell: cells[cell]["retention"] for cell in cells}},
    )
