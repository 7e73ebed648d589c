"""The simulation API: one JSON document (POST) or a Server-Sent Events stream (GET)."""

from __future__ import annotations

import asyncio
import json
import math
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Literal

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError

from gradient_flow_lab.app import jsonsafe, progress
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.schemas import (
    WORK_BUDGET,
    SimulationConfig,
    SimulationQuery,
    view_work,
)
from gradient_flow_lab.app.views import ViewResult, build_view
from gradient_flow_lab.app.views import bptt as bptt_view

router = APIRouter(prefix="/api", tags=["api"])

ViewName = Literal["explore", "bptt", "cells", "compare"]
PROGRESS_EVERY = 0.25  # seconds: a run shows its stages once it has taken this long
STREAM_CHUNKS = 24  # the backward sweep arrives in about this many time-ordered pieces
# Requests above a tenth of the work budget run one at a time in a lane of their own, so a few
# people running the largest networks cannot starve a class moving sliders on the defaults.
HEAVY_WORK = WORK_BUDGET // 10
_heavy_lane = threading.BoundedSemaphore(1)


def result_document(query: SimulationQuery, result: ViewResult) -> dict:
    """The full result as strict-JSON-ready data, non-finite values nulled *and* listed."""
    document, nonfinite = jsonsafe.to_strict({
        "config": query.config.model_dump(),
        "view": query.view,
        "summary": result.summary,
        "checks": result.checks,
        "series": result.series,
        "figures": {name: figure_json(fig) for name, fig in result.figures.items()},
    })
    document["nonfinite"] = nonfinite  # where nulls stand for inf or nan
    return document


def _build(query: SimulationQuery) -> ViewResult:
    if view_work(query, query.view) <= HEAVY_WORK:
        return build_view(query.config, query.view)
    # Heavy requests take turns; light ones never wait behind them.
    if not _heavy_lane.acquire(blocking=False):
        progress.report("waiting for another large network to finish", 0.0)
        _heavy_lane.acquire()
    try:
        return build_view(query.config, query.view)
    finally:
        _heavy_lane.release()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def _parse_body(request: Request, view: str) -> SimulationQuery:
    """The POST body and ``?view=`` as one SimulationQuery, validated once.

    Parsed here rather than by FastAPI so that the body and the view meet in one model (the work
    budget depends on both) and so that NaN, Infinity or 1e400 in the body are a 422, not a
    value that breaks the error handler's strict JSON."""
    raw = await request.body()  # FastAPI's max_body_size has already bounded it (413)
    try:
        body = json.loads(raw or b"{}", parse_constant=_reject_constant,
                          parse_float=_finite_float)
    except (ValueError, RecursionError) as error:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "input": None,
            "msg": f"the body is not strict JSON: {error}"}]) from None
    if not isinstance(body, dict):
        raise RequestValidationError([{
            "type": "model_type", "loc": ("body",), "input": None,
            "msg": "the body must be a JSON object of configuration fields"}])
    try:
        return SimulationQuery.model_validate({**body, "view": view})
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise ValueError(f"{text} is beyond float64")
    return value


@router.post("/simulate", openapi_extra={"requestBody": {
    "required": False,
    "content": {"application/json": {"schema": SimulationConfig.model_json_schema()}}}})
async def simulate_once(request: Request,
                        view: Annotated[ViewName, Query()] = "explore") -> Response:
    """Run one simulation and return the whole result (figures included) as strict JSON.

    The body is a JSON object of configuration fields (every one optional); ``view`` says
    which page's runs, checks and figures to make."""
    query = await _parse_body(request, view)
    document = await anyio.to_thread.run_sync(
        lambda: jsonsafe.dumps(result_document(query, _build(query))))
    return Response(document, media_type="application/json")


@router.get("/simulate/stream", response_class=EventSourceResponse)
async def simulate_stream(query: Annotated[SimulationQuery, Query()],
                          ) -> AsyncIterator[ServerSentEvent]:
    """Events: ``meta``; ``progress`` (``starting``, then, once a run has taken 0.25 s, each
    stage as it starts); ``backward`` chunks of ||d loss / d h_t|| per layer in the order the
    backward sweep visits them (t = T-1 down to 0), sent as soon as the main run's backward
    pass is done, while the diagnostics and figures still compute; ``result`` last.

    The NumPy work runs in a worker thread (``anyio.to_thread``), once; it wakes the event
    loop for each thing it has to tell. A client that goes away cancels the generator at its
    next await.
    """
    meta = {"config": query.config.model_dump(), "view": query.view,
            "seq_len": query.seq_len, "num_layers": query.num_layers}
    if query.view == "bptt":  # the columns the unrolled picture draws
        meta.update(bptt_view.stream_meta(query.config))
    yield _event("meta", meta)
    yield _event("progress", {"stage": "starting", "fraction": 0.0})
    loop = asyncio.get_running_loop()
    news: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    wake = asyncio.Event()

    def tell(kind: str, value: object) -> None:  # called in the worker thread
        news.put((kind, value))
        loop.call_soon_threadsafe(wake.set)

    work = asyncio.ensure_future(anyio.to_thread.run_sync(_build_document, query, tell))
    started = loop.time()
    sweep_sent = False
    stage = None  # the latest stage not sent yet
    woken: asyncio.Future | None = None
    try:
        while not work.done():
            woken = asyncio.ensure_future(wake.wait())
            # Sleep until there is news or the work is done, or until a stage that arrived too
            # early to show becomes due.
            due = None if stage is None else max(0.0, started + PROGRESS_EVERY - loop.time())
            await asyncio.wait({work, woken}, timeout=due, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            wake.clear()  # before reading the news: anything told later wakes the next wait
            while not news.empty():
                kind, value = news.get_nowait()
                if kind == "sweep":
                    for event in _sweep_events(value):
                        yield event
                    sweep_sent = True
                else:
                    stage = value
            # A quick run shows no stages (they would only flicker past).
            if stage is not None and not work.done() and loop.time() - started >= PROGRESS_EVERY:
                name, fraction = stage
                stage = None
                yield _event("progress", {"stage": name, "fraction": round(fraction, 3)})
        result, document = work.result()
    finally:
        work.cancel()  # the client went away: nobody waits for the thread's result
        if woken is not None:
            woken.cancel()
    if not sweep_sent:  # a view that did not hand its sweep over early
        for event in _sweep_events(result.primary.grad_norms):
            yield event
    yield ServerSentEvent(event="result", raw_data=document)


def _sweep_events(norms: np.ndarray) -> Iterator[ServerSentEvent]:
    """``backward`` events of ||d loss / d h_t|| (L, T), in about STREAM_CHUNKS time-ordered
    pieces from t = T-1 down to 0."""
    seq_len = norms.shape[1]
    size = max(1, -(-seq_len // STREAM_CHUNKS))
    for stop in range(seq_len, 0, -size):
        steps = list(range(stop - 1, max(stop - size, 0) - 1, -1))
        yield _event("backward", {"steps": steps, "norms": norms[:, steps].T,
                                  "seq_len": seq_len})


def _build_document(query: SimulationQuery,
                    listener: progress.Listener) -> tuple[ViewResult, str]:
    """The view and its strict-JSON text, both made in the worker thread, which tells
    ``listener`` how far it got."""
    with progress.reporting(listener):
        result = _build(query)
        progress.report("writing the result", 0.95)
        return result, jsonsafe.dumps(result_document(query, result))


def _event(name: str, data) -> ServerSentEvent:
    clean, nonfinite = jsonsafe.to_strict(data)
    if nonfinite:
        clean["nonfinite"] = nonfinite
    return ServerSentEvent(event=name, raw_data=jsonsafe.dumps(clean))
