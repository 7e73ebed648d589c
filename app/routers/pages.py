"""HTML pages rendered from templates/."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gradient_flow_lab.app.presets import presets_with_urls
from gradient_flow_lab.app.schemas import TrainingConfig
from gradient_flow_lab.app.templating import templates

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html",
                                      {"active_path": "/", "presets": presets_with_urls()})


# One template per page; the page's script reads its state from the query string.
PAGES = ("explore", "activations", "bptt", "cells", "compare")


def _page_route(name: str):
    def page(request: Request) -> HTMLResponse:
        context = {"active_path": f"/{name}", "presets": presets_with_urls()}
        return templates.TemplateResponse(request, f"{name}.html", context)

    page.__name__ = f"{name}_page"
    return page


for _name in PAGES:
    router.add_api_route(f"/{_name}", _page_route(_name), methods=["GET"],
                         response_class=HTMLResponse, name=f"{_name}_page")


@router.get("/train", response_class=HTMLResponse)
def train_page(request: Request) -> HTMLResponse:
    # the page's defaults are the API's defaults, written once in TrainingConfig
    context = {"active_path": "/train", "defaults": TrainingConfig().model_dump()}
    return templates.TemplateResponse(request, "train.html", context)
