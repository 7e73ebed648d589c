"""Assembles the FastAPI app: static mounts and routers. No endpoints live here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from gradient_flow_lab.app.errors import QuietDisconnectMiddleware, validation_error_handler
from gradient_flow_lab.app.modelstore import ModelNotFound
from gradient_flow_lab.app.resources import static_dir
from gradient_flow_lab.app.routers import activations, api, health, models, pages, train, vendor
from gradient_flow_lab.app.security import MAX_BODY_BYTES, SecurityMiddleware


def create_app() -> FastAPI:
    # FastAPIOffline is FastAPI with /docs served from files inside the fastapi-offline
    # package instead of a CDN: the API docs work in a lecture hall too. (No /redoc: ReDoc
    # fetches its logo from its own CDN.)
    app = FastAPIOffline(title="Gradient Flow Lab", version="0.1.0", redoc_url=None,
                         max_body_size=MAX_BODY_BYTES, static_url="/vendor/docs")
    app.add_middleware(SecurityMiddleware)
    app.add_middleware(QuietDisconnectMiddleware)  # outermost: sees what the others raise
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ModelNotFound, models.not_found_handler)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.include_router(vendor.router)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(activations.router)
    app.include_router(train.router)
    app.include_router(models.router)
    app.include_router(pages.router)
    return app


app = create_app()
