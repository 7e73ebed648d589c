"""Error answers in JSON: 422s that name the field and its allowed range, for people and for
scripts, and a 500 that says what happened in words."""

from __future__ import annotations

import logging
import math
import typing

import anyio
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradient_flow_lab.app.schemas import SimulationQuery, TrainingConfig
from gradient_flow_lab.app.workers import EngineFailed


def _model_for(path: str) -> type[BaseModel]:
    if path.startswith("/api/train"):
        return TrainingConfig
    if path.startswith("/api/activations"):
        from gradient_flow_lab.app.routers.activations import ActivationsQuery

        return ActivationsQuery
    return SimulationQuery


def _allowed(name: str, model: type[BaseModel] = SimulationQuery) -> str | None:
    """'between 1 and 1000' or 'one of rnn, lstm, gru', read off the model's own bounds."""
    field = model.model_fields.get(name)
    if field is None:
        return None
    low = high = None
    above = False
    for meta in field.metadata:
        low = getattr(meta, "ge", low)
        if getattr(meta, "gt", None) is not None:
            low, above = meta.gt, True
        high = getattr(meta, "le", high)
    if low is not None and high is not None:
        if above:
            return f"above {_number(low)} and at most {_number(high)}"
        return f"between {_number(low)} and {_number(high)}"
    if typing.get_origin(field.annotation) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(field.annotation)))
    if name == "model":  # an uploaded model's id
        return "the 64-hex-digit id of an uploaded model (the SHA-256 of its file)"
    return None


def _number(value: float) -> str:
    """1000, 2147483647, 0.01, 1e+06: whole numbers in full up to ten digits."""
    if float(value).is_integer() and abs(value) < 1e10:
        return str(int(value))
    return f"{value:g}"


def _safe_input(value: object) -> object:
    """The offending input as something strict JSON can always carry: NaN, infinities, lone
    surrogates and deep structures become their (shortened) repr."""
    if value is None or isinstance(value, bool | int) or (
            isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value[:200]
        except UnicodeEncodeError:
            pass
    return ascii(value)[:200]


def describe(error: dict, model: type[BaseModel] = SimulationQuery) -> dict:
    loc = error.get("loc", ())
    name = str(loc[-1]) if len(loc) > 1 else ""
    allowed = _allowed(name, model)
    message = error.get("msg", "invalid value")
    raw = error.get("input")
    value = _safe_input(raw)
    if allowed:
        # as sent (quoted if text); what JSON cannot carry is already its escaped repr
        plain = value is raw or (isinstance(raw, str) and value == raw[:200])
        shown = repr(value) if plain else value
        message = f"{name} must be {allowed} (got {shown}): {message}"
    clean = {key: item for key, item in error.items() if key not in ("input", "ctx", "url")}
    return {**clean, "input": value, "field": name or None, "msg": message}


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    model = _model_for(request.url.path)
    details, seen = [], set()
    for error in exc.errors():
        # The stream validates its query twice (the work-budget dependency and the endpoint):
        # say each problem once.
        key = (error.get("type"), tuple(error.get("loc", ())), repr(error.get("input")))
        if key not in seen:
            seen.add(key)
            details.append(describe(error, model))
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": details}))


async def server_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Any error no handler took: a JSON 500 naming the error (the traceback goes to the
    server's log). An error that left a task group arrives wrapped in an ExceptionGroup: the
    first error inside it is the one named."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # type: ignore[assignment]
    if isinstance(exc, EngineFailed):  # unwrapped from a task group's ExceptionGroup
        return await engine_failed_handler(request, exc)
    return JSONResponse(status_code=500, content={
        "detail": f"the server failed on this request ({type(exc).__name__}); it was logged"})


logger = logging.getLogger(__name__)


class QuietDisconnectMiddleware:
    """Swallows the error FastAPI's Server-Sent Events raise when a client leaves mid-stream.

    Every slider move closes the page's previous stream, and FastAPI (0.165) then finds its
    event queue closed and raises BrokenResourceError out of a task group, which uvicorn logs
    as "Exception in ASGI application" with a full traceback (fastapi discussion #15725). The
    client is gone and the response was already under way: there is nothing to answer, so this
    says nothing. Any other error, or one mixed with it, goes on as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except* (anyio.BrokenResourceError, anyio.ClosedResourceError):
            if not started:
                raise


async def not_found_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """A 404 for a person (a browser asking for a page: HTML, with the site's menu) or for a
    program (JSON, as every other error). A 405 names in ``Allow`` every method the path
    answers (Starlette names only those of the first route it found), and ``OPTIONS`` on a path
    that does not take it answers 204 with that ``Allow``. Other HTTP errors keep FastAPI's JSON
    answer."""
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        if allowed and request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allowed})
        if allowed:
            exc = StarletteHTTPException(405, exc.detail, headers={"Allow": allowed})
    wants_page = (exc.status_code == 404 and not request.url.path.startswith("/api/")
                  and "text/html" in request.headers.get("accept", ""))
    if not wants_page:
        return await http_exception_handler(request, exc)
    from gradient_flow_lab.app.templating import templates  # pages only: not for API errors

    detail = exc.detail if exc.detail != "Not Found" else (
        f"There is no page at {request.url.path}")
    return templates.TemplateResponse(request, "not_found.html", {"detail": detail},
                                      status_code=404, headers=exc.headers)


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """'GET, HEAD, POST, OPTIONS': the methods some route at this path takes (HEAD wherever
    GET is: app/edge.py answers it), or '' when none does. Asked of the routes themselves, one
    method at a time (FastAPI's included routers do not list their routes' methods); mounts
    (static files) answer their own 405."""
    found = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(not isinstance(route, Mount) and route.matches(scope)[0] is Match.FULL
               for route in getattr(request.app, "routes", ())):
            found.append(method)
    if not found:
        return ""
    if "GET" in found:
        found.insert(1, "HEAD")
    return ", ".join([*found, "OPTIONS"])


async def client_gone_handler(request: Request, exc: ClientDisconnect) -> Response:
    """The client left while its request body was still arriving: nobody is there to answer,
    and nothing went wrong here, so the log stays quiet (a traceback per dropped upload let a
    script fill the disk)."""
    return Response(status_code=400)


async def engine_failed_handler(request: Request, exc: EngineFailed) -> JSONResponse:
    """An engine process died under a request: one log line, and a 500 that says how."""
    logger.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(status_code=500, content={"detail": f"{exc}; try again"})


# ---- the statuses the layers around the routes send, in the OpenAPI document -----------------

_DETAIL = {"application/json": {"schema": {
    "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}


def document_responses(app: FastAPI) -> None:
    """Adds to each operation of ``app``'s OpenAPI document the statuses that come from outside
    its route: 414 (any query string over the limit, app/security.py), 413 (a body over the
    limit) where the operation takes a body, and 404 where it names an uploaded model (a
    ``model`` field or a ``{model_id}`` path: never uploaded here, or evicted)."""
    from gradient_flow_lab.app.security import MAX_QUERY_BYTES

    build = app.openapi

    def openapi() -> dict[str, typing.Any]:
        schema = build()  # FastAPI's, cached after the first call: changed in place, once
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("414", {
                    "description": f"a query string longer than {MAX_QUERY_BYTES} bytes",
                    "content": _DETAIL})
                if "requestBody" in operation:
                    responses.setdefault("413", {"description": "a body over the size limit",
                                                 "content": _DETAIL})
                if "{model_id}" in path or _names_a_model(operation):
                    missing = {"description": "no uploaded model with this id on this server "
                                              "(never uploaded here, or evicted since)"}
                    if "text/html" not in responses.get("200", {}).get("content", {}):
                        missing["content"] = _DETAIL  # a page's 404 is a page
                    responses.setdefault("404", missing)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _names_a_model(operation: dict) -> bool:
    if any(parameter.get("name") == "model" for parameter in operation.get("parameters", ())):
        return True
    for media in operation.get("requestBody", {}).get("content", {}).values():
        if "model" in media.get("schema", {}).get("properties", {}):
            return True
    return False
