"""HTML pages rendered from templates/.

Each page gets the field specs of its query (``fields``): its controls take their bounds,
steps, choices and defaults from them, and its script reads them from a JSON block, so the
pydantic models in app/schemas.py are the only place a bound or a default is written."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gradient_flow_lab.app.fieldspecs import field_specs
from gradient_flow_lab.app.presets import presets_with_urls
from gradient_flow_lab.app.routers.activations import ActivationsQuery
from gradient_flow_lab.app.schemas import CELL_NAMES, SimulationConfig, TrainingConfig
from gradient_flow_lab.app.templating import templates
from gradient_flow_lab.app.views.bptt import DEFAULT_TRUNCATION

router = APIRouter(tags=["pages"])
# The pages are `async def`: rendering a template takes about a millisecond and blocks nothing,
# and in the event loop they never wait behind requests that hold the thread pool.


def _explore_fields() -> dict:
    specs = field_specs(SimulationConfig)
    layers = specs["num_layers"]
    # Which layer the hidden-state heatmap shows: kept in the URL, never sent to the API (the
    # server sends every layer).
    specs["hidden_layer"] = {"name": "hidden_layer", "type": "int", "default": 0, "min": 0,
                             "max": layers["max"] - 1, "step": 1, "api": False,
                             "description": "Layer shown in the hidden-state heatmap."}
    return specs


# The fields of each page's state, in URL order, with the page's own defaults where it has them.
PAGE_FIELDS = {
    "explore": _explore_fields,
    "activations": lambda: field_specs(ActivationsQuery),
    # A loss at every step, so the band of the reach matrix shows, and a truncation to compare.
    "bptt": lambda: field_specs(
        SimulationConfig, ["cell", "nonlinearity", "seq_len", "num_layers", "hidden_size",
                           "weight_scale", "init", "loss_at", "truncation", "clip", "seed"],
        defaults={"loss_at": "all", "truncation": DEFAULT_TRUNCATION}),
    # The page is about gated cells, so it opens on the LSTM.
    "cells": lambda: field_specs(SimulationConfig, defaults={"cell": "lstm"}),
    "compare": lambda: field_specs(
        SimulationConfig, ["nonlinearity", "seq_len", "hidden_size", "weight_scale", "init",
                           "forget_bias", "loss_at", "seed"]),
    "train": lambda: field_specs(TrainingConfig),
    # One sequence and its loss at the last step, so that the slope of the gradient-norm curve
    # is the largest exponent's; long enough for the exponents to settle.
    "chaos": lambda: field_specs(
        SimulationConfig, ["cell", "nonlinearity", "seq_len", "num_layers", "hidden_size",
                           "input_size", "weight_scale", "input_scale", "init", "forget_bias",
                           "seed"],
        defaults={"seq_len": 100}),
}


def page_fields(name: str) -> dict:
    return PAGE_FIELDS[name]()


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html",
                                      {"active_path": "/", "presets": presets_with_urls()})


# One template per page; the page's script reads its state from the query string.
PAGES = ("explore", "activations", "bptt", "cells", "compare", "chaos")


def _page_route(name: str):
    async def page(request: Request) -> HTMLResponse:
        context = {"active_path": f"/{name}", "presets": presets_with_urls(),
                   "fields": page_fields(name)}
        return templates.TemplateResponse(request, f"{name}.html", context)

    page.__name__ = f"{name}_page"
    return page


for _name in PAGES:
    router.add_api_route(f"/{_name}", _page_route(_name), methods=["GET"],
                         response_class=HTMLResponse, name=f"{_name}_page")


@router.get("/train", response_class=HTMLResponse)
async def train_page(request: Request) -> HTMLResponse:
    context = {"active_path": "/train", "fields": page_fields("train"),
               "cell_names": CELL_NAMES}
    return templates.TemplateResponse(request, "train.html", context)


# The API documentation. FastAPIOffline serves Swagger UI's files here (app/main.py), so /docs
# works without a network; the page itself is ours, in the site's layout.
DOCS_STATIC = "/vendor/docs"


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def docs_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "docs.html", {
        "active_path": "/docs", "static_url": DOCS_STATIC,
        "openapi_url": request.app.openapi_url})
