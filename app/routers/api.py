"""The simulation API: one JSON document (POST) or a Server-Sent Events stream (GET)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Literal

import anyio
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app import jsonsafe, progress
from app.figures.common import figure_json
from app.schemas import WORK_BUDGET, SimulationConfig
from app.views import ViewResult, budget_error, view_builder, view_work

router = APIRouter(prefix="/api", tags=["api"])

ViewName = Literal["explore", "bptt", "cells", "compare"]
PROGRESS_EVERY = 0.25  # seconds: a run shows its stages once it has taken this long
STREAM_CHUNKS = 24  # the backward sweep arrives in about this many time-ordered pieces
# Requests above a tenth of the work budget run one at a time in a lane of their own, so a few
# people running the largest networks cannot starve a class moving sliders on the defaults.
HEAVY_WORK = WORK_BUDGET // 10
_heavy_lane = threading.BoundedSemaphore(1)


def result_document(config: SimulationConfig, view: str, result: ViewResult) -> dict:
    """The full result as strict-JSON-ready data, non-finite values nulled *and* listed."""
    document, nonfinite = jsonsafe.to_strict({
        "config": config.model_dump(),
        "view": view,
        "summary": result.summary,
        "checks": result.checks,
        "series": result.series,
        "figures": {name: figure_json(fig) for name, fig in result.figures.items()},
    })
    document["nonfinite"] = nonfinite  # where nulls stand for inf or nan
    return document


def _within_budget(config: SimulationConfig, view: str) -> None:
    """Refuses, before any NumPy runs, a view whose runs together exceed the work budget."""
    message = budget_error(config, view)
    if message:
        raise HTTPException(status_code=422, detail=[
            {"type": "work_budget", "loc": ["query"], "field": None, "msg": message}])


def _stream_budget(config: Annotated[SimulationConfig, Query()],
                   view: Annotated[ViewName, Query()] = "explore") -> None:
    _within_budget(config, view)


def _build(config: SimulationConfig, view: str) -> ViewResult:
    builder = view_builder(view)
    if view_work(config, view) <= HEAVY_WORK:
        return builder(config)
    # Heavy requests take turns; light ones never wait behind them.
    if not _heavy_lane.acquire(blocking=False):
        progress.report("waiting for another large network to finish", 0.0)
        _heavy_lane.acquire()
    try:
        return builder(config)
    finally:
        _heavy_lane.release()


@router.post("/simulate")
def simulate_once(config: SimulationConfig,
                  view: Annotated[ViewName, Query()] = "explore") -> Response:
    """Run one simulation and return the whole result (figures included) as strict JSON."""
    _within_budget(config, view)
    document = result_document(config, view, _build(config, view))
    return Response(jsonsafe.dumps(document), media_type="application/json")


@router.get("/simulate/stream", response_class=EventSourceResponse,
            dependencies=[Depends(_stream_budget)])
async def simulate_stream(config: Annotated[SimulationConfig, Query()],
                          view: Annotated[ViewName, Query()] = "explore",
                          ) -> AsyncIterator[ServerSentEvent]:
    """Events: ``meta``; ``progress`` (``starting``, then, once a run has taken 0.25 s, each
    stage as it starts); ``backward`` chunks of ||d loss / d h_t|| per layer in the order the
    backward sweep visits them (t = T-1 down to 0), sent as soon as the main run's backward
    pass is done, while the diagnostics and figures still compute; ``result`` last.

    The NumPy work runs in a worker thread (``anyio.to_thread``), once; it wakes the event
    loop for each thing it has to tell. A client that goes away cancels the generator at its
    next await.
    """
    yield _event("meta", {"config": config.model_dump(), "view": view,
                          "seq_len": config.seq_len, "num_layers": config.num_layers})
    yield _event("progress", {"stage": "starting", "fraction": 0.0})
    loop = asyncio.get_running_loop()
    news: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    wake = asyncio.Event()

    def tell(kind: str, value: object) -> None:  # called in the worker thread
        news.put((kind, value))
        loop.call_soon_threadsafe(wake.set)

    work = asyncio.ensure_future(anyio.to_thread.run_sync(_build_document, config, view, tell))
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


def _build_document(config: SimulationConfig, view: str,
                    listener: progress.Listener) -> tuple[ViewResult, str]:
    """The view and its strict-JSON text, both made in the worker thread, which tells
    ``listener`` how far it got."""
    with progress.reporting(listener):
        result = _build(config, view)
        progress.report("writing the result", 0.95)
        return result, jsonsafe.dumps(result_document(config, view, result))


def _event(name: str, data) -> ServerSentEvent:
    clean, nonfinite = jsonsafe.to_strict(data)
    if nonfinite:
        clean["nonfinite"] = nonfinite
    return ServerSentEvent(event=name, raw_data=jsonsafe.dumps(clean))
