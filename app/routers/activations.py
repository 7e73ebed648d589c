"""The activations API: the page's figures and numbers for one depth n and starting point x0."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gradient_flow_lab.app import jsonsafe
from gradient_flow_lab.app.figures import activations as activation_figures
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.views import activations as activations_view

router = APIRouter(prefix="/api", tags=["activations"])


class ActivationsQuery(BaseModel):
    """The page's query string, field for field (the names appear in shared URLs)."""

    model_config = ConfigDict(extra="ignore")

    depth: int = Field(10, ge=0, le=activation_figures.MAX_DEPTH,
                       description="How many times f is applied (the chain length n).")
    x0: float = Field(0.5, ge=-activation_figures.X0_LIMIT, le=activation_figures.X0_LIMIT,
                      allow_inf_nan=False, description="Starting point of the chain.")


@router.get("/activations")
def activations(query: Annotated[ActivationsQuery, Query()]) -> Response:
    """Figures (Plotly JSON) and a summary, as strict JSON: non-finite numbers become null and
    are listed under ``nonfinite``."""
    result = activations_view.build(query.depth, query.x0)
    document, nonfinite = jsonsafe.to_strict({
        "query": query.model_dump(),
        "summary": result.summary,
        "checks": activations_view.paper_checks(result.summary),
        "figures": {name: figure_json(fig) for name, fig in result.figures.items()},
    })
    document["nonfinite"] = nonfinite
    return Response(jsonsafe.dumps(document), media_type="application/json")
