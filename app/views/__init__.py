"""What each page asks the API for: one view builder per page, one module per page.

A view builder takes the configuration and returns a ``ViewResult`` (``views.common``): the runs
it made, a summary, the "paper checks", named figures and extra series, all NumPy / plain Python.
Views decide which runs a page needs and what its checks say; ``app.figures`` draws; the engine
does the maths. ``app.routers.api`` turns the result into strict JSON and streams it.
"""

from __future__ import annotations

from collections.abc import Callable

from gradient_flow_lab.app.schemas import SimulationConfig
from gradient_flow_lab.app.views import bptt, cells, chaos, compare, explore
from gradient_flow_lab.app.views.common import ViewResult

BUILDERS: dict[str, Callable[[SimulationConfig], ViewResult]] = {
    "explore": explore.view,
    "bptt": bptt.view,
    "cells": cells.view,
    "compare": compare.view,
    "chaos": chaos.view,
}


def build_view(config: SimulationConfig, view: str) -> ViewResult:
    """Runs the page ``view``'s simulations for ``config``; raises KeyError for an unknown view."""
    return BUILDERS[view](config)


__all__ = ["BUILDERS", "ViewResult", "build_view"]
