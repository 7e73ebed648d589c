"""Assembles the FastAPI app: static mounts, routers and what runs at startup. No endpoints."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from threadpoolctl import threadpool_limits

from gradient_flow_lab.app import __version__, edge, logfilter, shutdown
from gradient_flow_lab.app.errors import (
    QuietDisconnectMiddleware,
    client_gone_handler,
    document_responses,
    engine_failed_handler,
    not_found_handler,
    server_error_handler,
    validation_error_handler,
)
from gradient_flow_lab.app.modelstore import ModelNotFound
from gradient_flow_lab.app.resources import static_dir
from gradient_flow_lab.app.routers import (
    activations,
    api,
    health,
    lesson,
    models,
    pages,
    train,
    vendor,
)
from gradient_flow_lab.app.security import MAX_BODY_BYTES
from gradient_flow_lab.app.settings import get_settings
from gradient_flow_lab.app.workers import EngineFailed, engine_pool

# BLAS threads per process while the app runs. The engine's matrices are small (H <= 256), so
# extra BLAS threads add no speed, while every request already runs in a thread of its own:
# concurrent requests' OpenBLAS threads spun against each other for the two cores (measured
# here, one LSTM run went from 0.08 s to 3 s under load).
BLAS_THREADS = 1


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Read the settings now, so that a bad GFL_ variable stops the server at startup (also
    # under plain `uvicorn ...:app`), not at the first training request.
    app.dependency_overrides.get(get_settings, get_settings)()
    logfilter.install()
    shutdown.watch_signals()  # streams say "stopping" before the server waits for them
    pool = engine_pool()
    await anyio.to_thread.run_sync(pool.start)  # the first requests wait for no process
    _freeze_startup_objects()
    try:
        with threadpool_limits(limits=BLAS_THREADS):
            yield
    finally:
        pool.close()


def _freeze_startup_objects() -> None:
    """What import and startup made lives as long as the process: frozen, the collector no
    longer walks it. Under load a full collection walked those ~75,000 objects and held the
    event loop 45-65 ms (every request and /healthz waited); frozen, 2 ms. Once per process (a
    test session starts the app many times). Young collections cost 0.1 ms each: a higher
    gen-0 threshold gained nothing measurable."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()  # garbage is freed first, not frozen for good
    gc.freeze()


_frozen = False


def create_app() -> FastAPI:
    # FastAPIOffline is FastAPI with /docs served from files inside the fastapi-offline
    # package instead of a CDN: the API docs work in a lecture hall too. (No /redoc: ReDoc
    # fetches its logo from its own CDN.)
    # Its own /docs page is switched off: ours (routers/pages.py) shows the same Swagger UI inside
    # the site's header, so the menu and projector mode (?present=1) work there too.
    app = FastAPIOffline(title="Gradient Flow Lab", version=__version__, redoc_url=None,
                         docs_url=None, max_body_size=MAX_BODY_BYTES, static_url=pages.DOCS_STATIC,
                         lifespan=lifespan)
    # The layers of app/edge.py go around all of FastAPI's stack: its own outermost middleware
    # (its 500 page, its body limit's 413) would otherwise answer outside ours.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: edge.wrap(build_stack())  # type: ignore[method-assign]
    app.add_middleware(QuietDisconnectMiddleware)  # sees what the routes raise
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, not_found_handler)  # HTML 404 pages
    app.add_exception_handler(ModelNotFound, models.not_found_handler)
    app.add_exception_handler(ClientDisconnect, client_gone_handler)  # no traceback: gone
    app.add_exception_handler(EngineFailed, engine_failed_handler)  # one line in the log
    app.add_exception_handler(Exception, server_error_handler)  # JSON 500s
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.include_router(vendor.router)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(activations.router)
    app.include_router(train.router)
    app.include_router(models.router)
    app.include_router(pages.router)
    app.include_router(lesson.router)
    document_responses(app)  # 414, 413, 404 sent outside the routes
    return app


app = create_app()
