"""Uploaded models: the upload API, a model's description and health report, and their pages."""

from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from typing import Annotated, Literal, get_args
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gradient_flow_lab.app import jsonsafe
from gradient_flow_lab.app.modelstore import (
    MODEL_ID_PATTERN,
    FileTooLarge,
    ModelNotFound,
    get_store,
)
from gradient_flow_lab.app.security import upload_body_bytes
from gradient_flow_lab.app.templating import templates
from gradient_flow_lab.app.views import models as model_views
from gradient_flow_lab.engine.io import ModelFileError

router = APIRouter(tags=["models"])
ModelId = Annotated[str, Path(pattern=MODEL_ID_PATTERN, description="SHA-256 of the upload.")]
# What nn.RNN can be built with (torch.nn.RNN(nonlinearity=...) takes these two only).
Nonlinearity = Literal["tanh", "relu"]
# Both files and the multipart framing (GFL_MODEL_MAX_BYTES as the server starts); the store
# checks each file against its own limit (413).
UPLOAD_BODY_BYTES = upload_body_bytes()
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "state_dict of nn.RNN/LSTM/GRU as .safetensors or .npz"},
        "inputs": {"type": "string", "format": "binary",
                   "description": "optional .npy input sequence, (T, D) or (T, B, D)"}}}}}}}


async def _read_upload(request: Request) -> tuple[bytes, bytes | None, dict[str, str]]:
    """The model's bytes, the inputs' (or None) and the page's text fields (nonlinearity,
    present) when the form was posted by a browser without JavaScript."""
    limit = get_store().max_file_bytes
    try:
        async with request.form(max_files=2, max_fields=4) as form:
            fields = {name: value for name in PAGE_FIELDS
                      if isinstance(value := form.get(name), str)}
            parts = {}
            for name in ("file", "inputs"):
                upload = form.get(name)
                if upload is None or isinstance(upload, str):
                    if name == "file":
                        raise HTTPException(422, "send the model as a multipart form field "
                                                 "named 'file' (.safetensors or .npz)")
                    continue
                data = await upload.read(limit + 1)
                if name == "inputs" and not data and not upload.filename:
                    continue  # a browser's form with no file chosen sends an empty part
                if len(data) > limit:
                    label = "model" if name == "file" else name
                    raise HTTPException(413, f"the {label} file is over this server's limit "
                                             f"of {limit:,} bytes")
                parts[name] = data
    except (AssertionError, ValueError, KeyError) as error:  # not multipart, or malformed
        raise HTTPException(422, f"expected a multipart/form-data upload: {error}") from None
    return parts["file"], parts.get("inputs"), fields


# The upload page's own fields, sent along when its form is posted without JavaScript.
PAGE_FIELDS = ("nonlinearity", "present")


def report_address(stored: dict, fields: dict[str, str]) -> str:
    """Where a stored upload's report is, for the page that sent it: the RNN's nonlinearity
    when it is not tanh, and ?present=1 when the page was in projector mode."""
    query = {}
    if stored["cell"] == "rnn" and fields.get("nonlinearity", "tanh") != "tanh":
        query["nonlinearity"] = fields["nonlinearity"]
    if fields.get("present") == "1":
        query["present"] = "1"
    return f"/models/{stored['id']}" + (f"?{urlencode(query)}" if query else "")


@router.post("/api/models", status_code=201, max_body_size=UPLOAD_BODY_BYTES,
             openapi_extra=UPLOAD_SCHEMA,
             responses={400: {"description": "a malformed multipart body (says why)"},
                        303: {"description": "posted by the upload page's form (Accept: "
                                             "text/html): to the model's report"},
                        413: {"description": "a file over the size limit"},
                        422: {"description": "not a model the engine can use, or a file that "
                                             "lies about its sizes (says which array and field)"}})
async def upload_model(request: Request) -> Response:
    """Store a model (and optional inputs) under the SHA-256 of its bytes: 201 with its id,
    cell, num_layers, input_size, hidden_size, output_size (null without a head), warnings,
    prefix (removed from every key, such as 'module.'), module_prefix and aliases (tensors
    restored from the tied copies a safetensors file's metadata names). A browser's form post
    (Accept: text/html) is sent on to the report instead (303), keeping its fields
    `nonlinearity` (tanh or relu, as nn.RNN has) and `present` (projector mode)."""
    model_bytes, inputs_bytes, fields = await _read_upload(request)
    if fields.get("nonlinearity", "tanh") not in get_args(Nonlinearity):
        raise HTTPException(422, "nonlinearity: an nn.RNN is built with tanh or relu")
    try:
        stored = await anyio.to_thread.run_sync(get_store().add, model_bytes, inputs_bytes)
    except (FileTooLarge, ModelFileError) as error:
        # The error's frames hold the file's bytes, and a reference cycle (asyncio's future)
        # holds the error until a full collection: cleared, the bytes go at once.
        traceback.clear_frames(error.__traceback__)
        raise HTTPException(413 if isinstance(error, FileTooLarge) else 422,
                            str(error)) from None
    described = stored.describe()
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(report_address(described, fields), status_code=303)
    return JSONResponse(described, status_code=201)


@router.get("/api/models/{model_id}", responses={404: {"description": "no such model"}})
def describe_model(model_id: ModelId) -> dict:
    """What the model is, and which simulation fields it fixes (404 once evicted)."""
    return get_store().get(model_id).describe()


_reports: OrderedDict[tuple[str, str], tuple[dict, dict]] = OrderedDict()
_reports_lock = threading.Lock()
REPORT_CACHE = 16


def report_document(model_id: str, nonlinearity: str) -> tuple[dict, dict]:
    """The report and its figures as JSON-ready data (cached: a report is pure)."""
    stored = get_store().get(model_id)
    key = (model_id, nonlinearity)
    with _reports_lock:
        if key in _reports:
            _reports.move_to_end(key)
            return _reports[key]
    result = model_views.report_data(stored.model, stored.inputs, nonlinearity=nonlinearity,
                                     model_id=model_id)
    with _reports_lock:
        _reports[key] = result
        while len(_reports) > REPORT_CACHE:
            _reports.popitem(last=False)
    return result


@router.get("/api/models/{model_id}/report", responses={404: {"description": "no such model"}})
def model_report(model_id: ModelId,
                 nonlinearity: Annotated[Nonlinearity, Query()] = "tanh") -> Response:
    """The health report as JSON: spectra, carry-gate biases, gate saturation, the per-step
    factor of ||dh_T/dh_t|| and its horizon, the paper checks, a sentence for each, figures."""
    report, figures = report_document(model_id, nonlinearity)
    return Response(jsonsafe.dumps({**report, "figures": figures}),
                    media_type="application/json")


# ---- pages ------------------------------------------------------------------------------------

@router.get("/models", response_class=HTMLResponse, tags=["pages"])
def models_page(request: Request) -> HTMLResponse:
    store = get_store()
    return templates.TemplateResponse(request, "models.html", {
        "active_path": "/models", "max_bytes": store.max_file_bytes, "missing": None})


@router.get("/models/{model_id}", response_class=HTMLResponse, tags=["pages"])
def model_report_page(request: Request, model_id: ModelId,
                      nonlinearity: Annotated[Nonlinearity, Query()] = "tanh") -> HTMLResponse:
    try:
        report, figures = report_document(model_id, nonlinearity)
    except ModelNotFound:
        return templates.TemplateResponse(request, "models.html", {
            "active_path": "/models", "max_bytes": get_store().max_file_bytes,
            "missing": model_id}, status_code=404)
    return templates.TemplateResponse(request, "model_report.html", {
        "active_path": "/models", "report": report, "figures": figures})


@router.get("/models/{model_id}/offline", tags=["pages"],
            responses={404: {"description": "no such model"}})
def model_report_offline(model_id: ModelId,
                         nonlinearity: Annotated[Nonlinearity, Query()] = "tanh") -> Response:
    """The report as one self-contained HTML file (plotly.js inline), saved by the browser."""
    report, figures = report_document(model_id, nonlinearity)
    html = model_views.offline_html(report, figures)
    return Response(html, media_type="text/html", headers={
        "Content-Disposition": f'attachment; filename="model-{model_id[:12]}-report.html"'})


def not_found_handler(request: Request, error: ModelNotFound) -> JSONResponse:
    """A ``model=`` id the store does not hold (never uploaded, or evicted): 404 saying so."""
    return JSONResponse({"detail": str(error)}, status_code=404)
