"""The comparison page's view (/compare): rnn, lstm and gru on the same input.

Every cell runs with the page's configuration and the same seed, so the inputs and targets are
identical (the weights differ in shape, so they cannot be shared). The rnn run is the primary one:
its backward sweep is what the stream sends while the page waits.
"""

from __future__ import annotations

import numpy as np

from gradient_flow_lab import engine
from gradient_flow_lab.app.figures import compare as figures
from gradient_flow_lab.app.progress import report, sweep_ready
from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.simulation import Simulation, simulate
from gradient_flow_lab.app.views import words
from gradient_flow_lab.app.views.common import ViewResult, check, summarize

CELLS = ("rnn", "lstm", "gru")


def cell_configs(config: SimulationConfig) -> dict[str, SimulationConfig]:
    """The configuration once per cell (the query's work budget already counted all three)."""
    return {cell: config.model_copy(update={"cell": cell}) for cell in CELLS}


def keeps_more_check(sims: dict[str, Simulation], cell: str) -> dict:
    """A comparison, not a theorem: does the gated cell keep more of the gradient back to t = 0
    than the plain rnn on this input? True or false for these settings (a ✗ is a result).
    Keeping is not growing: a ratio above 1 is an exploding gradient, and the question does not
    apply."""
    label = f"Comparison: the {cell.upper()} keeps more of its gradient at t = 0 than the plain RNN"
    check_id = f"{cell}_keeps_more"
    seq_len = sims[cell].trace.seq_len
    if seq_len == 1:
        return check(check_id, label, "n/a", "one step: there is nothing to carry back",
                     "measured")
    mine = engine.retention(sims[cell].grad_norms[-1])  # top layer
    plain = engine.retention(sims["rnn"].grad_norms[-1])
    if not (np.isfinite(mine) and np.isfinite(plain)):
        return check(check_id, label, "n/a", "a ratio is not a number (overflow)", "measured")
    if mine > 1 + 1e-9:
        return check(check_id, label, "n/a",
                     f"the {cell}'s gradient grew {mine:.3g}-fold back to t = 0: that is "
                     "exploding, not keeping", "measured")
    name = cell.upper()
    if mine > plain:
        verdict = (f"yes: the {name} keeps {words.ratio_words(mine / plain, 'what the RNN keeps')}"
                   if plain > 0 else f"yes: the RNN keeps nothing, the {name} {words.sci(mine)}")
    elif mine == plain:
        verdict = "no: both keep the same"
    else:
        verdict = (f"no, not here: the {name} keeps "
                   f"{words.ratio_words(mine / plain, 'what the RNN keeps')}")
    return check(check_id, label, "pass" if mine > plain else "fail",
                 f"{verdict} (‖∂loss/∂h₀‖ / ‖∂loss/∂h_T−1‖: {cell} {words.sci(mine)}, "
                 f"rnn {words.sci(plain)})", "measured")


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
        cells[cell] = {**summarize(sim), "retention": engine.retention(sim.grad_norms[-1])}
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
                    ", ".join(f"{cell} at t = {step}" for cell, step in overflowed.items()),
                    "measured")]
    checks += [keeps_more_check(sims, "lstm"), keeps_more_check(sims, "gru")]
    return ViewResult(
        primary=sims["rnn"],
        summary=summary,
        checks=checks,
        figures={"grad_norms": figures.grad_norm_figure(sims),
                 "retention": figures.retention_figure(sims)},
        series={"grad_norms": {cell: sim.grad_norms[-1] for cell, sim in sims.items()},
                "retention": {cell: cells[cell]["retention"] for cell in cells}},
    )
