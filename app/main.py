"""Assembles the FastAPI app: static mounts and routers. No endpoints live here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from app.errors import validation_error_handler
from app.resources import static_dir
from app.routers import activations, api, health, pages, train, vendor
from app.security import MAX_BODY_BYTES, SecurityMiddleware


def create_app() -> FastAPI:
    app = FastAPI(title="Gradient Flow Lab", version="0.1.0", max_body_size=MAX_BODY_BYTES)
    app.add_middleware(SecurityMiddleware)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.include_router(vendor.router)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(activations.router)
    app.include_router(train.router)
    app.include_router(pages.router)
    return app


app = create_app()
