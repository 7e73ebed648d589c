"""HTML pages rendered from templates/."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.templating import templates

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html", {"active_path": "/"})


# One template per page; the page's script reads its state from the query string.
PAGES = ("explore", "activations", "bptt", "cells", "compare")


def _page_route(name: str):
    def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, f"{name}.html", {"active_path": f"/{name}"})

    page.__name__ = f"{name}_page"
    return page


for _name in PAGES:
    router.add_api_route(f"/{_name}", _page_route(_name), methods=["GET"],
                         response_class=HTMLResponse, name=f"{_name}_page")
