"""The simulation API: one JSON document (POST) or a Server-Sent Events stream (GET)."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import nullcontext, suppress
from dataclasses import replace
from typing import Annotated, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field, ValidationError

from gradient_flow_lab.app import admission, jobs, progress, shutdown, sse
from gradient_flow_lab.app.abandon import stop_when_gone
from gradient_flow_lab.app.modelstore import ModelNotFound, get_store
from gradient_flow_lab.app.presets import presets_with_urls
from gradient_flow_lab.app.resultcache import (
    MAX_AGE,
    CachedResult,
    cache_key,
    etag_for,
    result_cache,
)
from gradient_flow_lab.app.schemas import SimulationConfig, SimulationQuery, View
from gradient_flow_lab.app.singleflight import SingleFlight, UnlessFollowed
from gradient_flow_lab.app.supersede import PAGE_HEADER, pages
from gradient_flow_lab.app.views import bptt as bptt_view
from gradient_flow_lab.app.workers import engine_pool

router = APIRouter(prefix="/api", tags=["api"])
logger = logging.getLogger(__name__)

ViewName = View
PROGRESS_EVERY = 0.25  # seconds: a run shows its stages once it has taken this long
# Requests above a tenth of the work budget run one at a time in a lane of their own, so a few
# people running the largest networks cannot starve a class moving sliders on the defaults;
# every request holds its estimated memory while it runs. Both are waited for in the event
# loop, before the work gets a thread (app/admission.py).
HEAVY_WORK = admission.HEAVY_WORK
heavy_lane = admission.heavy_lane.limiter
WAITING = "waiting for another large network to finish"

# What the worker tells the stream: ("stage", (name, fraction)), ("sweep", norms (L, T)),
# ("partial", (name, data)),
# ("done", the CachedResult), ("error", a message for the page) or ("stopped", None) when the
# work stopped because a newer stream from the same page superseded it.
News = tuple[str, object]
# Concurrent requests for the same uncached result share one computation.
flights = SingleFlight()


# ---- the result cache, shared by POST, GET and the stream ------------------------------------

async def obtain_result(query: SimulationQuery, request: Request) -> CachedResult | None:
    """The result from the cache, or computed once however many ask for it at the same time.
    None when this request's client left while it computed (the work stopped at its next
    stage). Too many large networks waiting, or the server stopping: HTTPException(503)."""
    key, cache = cache_key(query), result_cache()

    async def compute() -> CachedResult:
        with admission.admitted(query) as turn:
            async with stop_when_gone(request) as gone, turn:
                # Shielded: once started, the work ends by its stop flag (the client left and
                # nobody else waits), so a result others wait for is finished and kept.
                with anyio.CancelScope(shield=True):
                    entry = await engine_pool().run(jobs.simulation, query, _store_for(query),
                                                    stop=_stop_flag(gone, key))
        cache.put(key, entry)
        return entry

    try:
        return await flights.run(key, lambda: cache.get(key), compute)
    except progress.Stopped:
        if shutdown.is_stopping():  # the client is still there: tell it why
            raise HTTPException(503, shutdown.MESSAGE,
                                headers={"Retry-After": str(shutdown.RETRY_SECONDS)}) from None
        return None


def _stop_flag(gone: threading.Event, key: str) -> UnlessFollowed:
    """What stops a computation: its client left and nobody else waits, or the server stops."""
    return UnlessFollowed(gone, flights, key, always=shutdown.is_stopping)


def _store_for(query: SimulationQuery) -> dict | None:
    """The model store an engine process must read for this query (None: no uploaded model)."""
    return get_store().spec() if query.config.model else None


def _cache_headers(query: SimulationQuery, key: str | None = None) -> dict[str, str]:
    key = cache_key(query) if key is None else key
    return {"ETag": etag_for(key), "Cache-Control": f"public, max-age={MAX_AGE}"}


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison: any listed tag (W/ or not) equal to ours, or ``*``."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


async def _parse_body(request: Request, view: str) -> SimulationQuery:
    """The POST body and ``?view=`` as one SimulationQuery, validated once.

    Parsed here rather than by FastAPI so that the body and the view meet in one model (the work
    budget depends on both). NaN, Infinity and 1e400 parse to floats that the model refuses by
    name (a 422 naming the field), never reaching a JSON encoder as raw input."""
    raw = await request.body()  # FastAPI's max_body_size has already bounded it (413)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as error:
        why = str(error)
        if "integer string conversion" in why:  # Python's own words, about its own limit
            why = "it holds an integer of more than 4300 digits"
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "input": None,
            "msg": f"the body is not valid JSON: {why}"}]) from None
    if not isinstance(body, dict):
        raise RequestValidationError([{
            "type": "model_type", "loc": ("body",), "input": None,
            "msg": "the body must be a JSON object of configuration fields"}])
    # A program's typo (seq_length) must not quietly run the defaults. (Links stay lenient:
    # a query string may carry fields an older version had.)
    unknown = [name for name in body if name not in SimulationConfig.model_fields]
    if unknown:
        raise RequestValidationError([{
            "type": "extra_forbidden", "loc": ("body", name), "input": body[name],
            "msg": ("the view goes in the query string (?view=...), not the body"
                    if name == "view" else f"{name!r} is not a configuration field; the fields "
                    f"are {', '.join(SimulationConfig.model_fields)}")}
            for name in unknown[:10]])
    try:
        return SimulationQuery.model_validate({**body, "view": view})
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


async def _parse_query(request: Request) -> SimulationQuery:
    """The query string as one SimulationQuery, validated once per request.

    What FastAPI did for ``Annotated[SimulationQuery, Query()]``, without its per-field
    dependency machinery (about a third of a cached request's CPU): the last of repeated keys
    wins, unknown keys are ignored, an empty value is a value (422 for a number), and an error's
    ``loc`` is ``("query", field)``. The OpenAPI document lists the fields through
    ``QUERY_OPENAPI``."""
    try:
        return SimulationQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def _query_openapi() -> dict:
    """The parameters and the 422 that FastAPI would document for a SimulationQuery read from
    the query string (one optional query parameter per field, its schema and description)."""
    schema = SimulationQuery.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required,
                     "schema": field}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return {"parameters": parameters, "responses": {"422": {
        "description": "Validation Error",
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}}


QUERY_OPENAPI = _query_openapi()
QueryFromString = Annotated[SimulationQuery, Depends(_parse_query)]


@router.post("/simulate", openapi_extra={"requestBody": {
    "required": False,
    "content": {"application/json": {"schema": {**SimulationConfig.model_json_schema(),
                                                "additionalProperties": False}}}}})
async def simulate_once(request: Request,
                        view: Annotated[ViewName, Query()] = "explore") -> Response:
    """Run one simulation and return the whole result (figures included) as strict JSON.

    The body is a JSON object of configuration fields (every one optional); ``view`` says
    which page's runs, checks and figures to make."""
    query = await _parse_body(request, view)
    entry = await obtain_result(query, request)
    if entry is None:  # the client left: the work stopped at its next stage, nobody reads
        return Response(status_code=499)
    return Response(entry.document, media_type="application/json",
                    headers=_cache_headers(query))


async def simulate_get(query: QueryFromString, request: Request) -> Response:
    """The same JSON as ``POST /api/simulate``, from the query string (``view`` and any
    configuration fields), cacheable by any HTTP cache: a strong ``ETag`` (the result is a pure
    function of the configuration, the view and the package version) and ``Cache-Control:
    public``; ``If-None-Match`` with that tag gets 304 and no work."""
    headers = _cache_headers(query)
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    entry = await obtain_result(query, request)
    if entry is None:
        return Response(status_code=499)
    return Response(entry.document, media_type="application/json", headers=headers)


async def simulation_news(query: QueryFromString, request: Request,
                          ) -> AsyncIterator[MemoryObjectReceiveStream[News]]:
    """Starts the simulation and hands the stream what its worker tells, in order.

    A dependency with ``yield``, so that its task group is entered and left by the request's
    exit stack in one task (an async generator that yields inside a task group cannot promise
    that). When the response ends, finished or because the client left, the waiting is
    cancelled, and the worker stops at its next progress report. Too many large
    networks waiting: 503 before the stream starts (a cached result waits for nothing). A newer
    stream from the same page (``X-GFL-Page``) sets ``stop`` too (``app.supersede``)."""
    key = cache_key(query)
    cached = result_cache().get(key) is not None
    with (nullcontext(None) if cached else admission.admitted(query)) as turn:
        send, receive = anyio.create_memory_object_stream[News](math.inf)
        watcher = send.clone()
        stop = threading.Event()
        try:
            with pages.latest(request.headers.get(PAGE_HEADER), stop, key, flights.followed):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(_simulate, query, turn, send, stop)
                    tasks.start_soon(_tell_when_stopping, watcher, stop)
                    try:
                        yield receive
                    finally:
                        stop.set()
                        tasks.cancel_scope.cancel()
        finally:
            # Every task has ended here. A stream that never started reading, or a task
            # cancelled before it ran, leaves its end open: closed now, not by the garbage
            # collector (whose ResourceWarning surfaces at random later).
            for end in (send, watcher, receive):
                end.close()


async def _simulate(query: SimulationQuery, turn: admission.Turn | None,
                    send: MemoryObjectSendStream[News], stop: threading.Event) -> None:
    async with send:
        try:
            key, cache = cache_key(query), result_cache()

            async def compute() -> CachedResult:
                # turn is None when the result was cached as the stream began (and has since
                # been evicted): it then runs without queueing, as one request once did.
                if turn is not None and turn.must_wait:
                    send.send_nowait(("stage", (WAITING, 0.0)))
                async with turn if turn is not None else nullcontext():
                    with anyio.CancelScope(shield=True):  # as in obtain_result
                        entry = await engine_pool().run(
                            jobs.simulation, query, _store_for(query),
                            stop=_stop_flag(stop, key), tell=_teller(send))
                cache.put(key, entry)
                return entry

            # A cached result is sent at once; one computed for another request at the same
            # moment is waited for (single flight).
            send.send_nowait(("done", await flights.run(key, lambda: cache.get(key), compute)))
        except progress.Stopped:  # the client left, or a newer stream from its page took over
            with suppress(anyio.BrokenResourceError):
                send.send_nowait(("stopped", None))  # the stream ends without a result
        except anyio.BrokenResourceError:
            pass  # the client left: nobody reads on
        except Exception as error:  # a bug: the page gets an `error` event, the log the rest
            logger.exception("simulation failed: %s", query.model_dump())
            with suppress(anyio.BrokenResourceError):
                send.send_nowait(("error", f"the simulation failed on the server "
                                           f"({type(error).__name__}: {error})"))


async def _tell_when_stopping(send: MemoryObjectSendStream[News], stop: threading.Event) -> None:
    """Once the server begins to stop: the work stops, the stream says why and ends."""
    async with send:
        await shutdown.stopping()
        stop.set()
        with suppress(anyio.BrokenResourceError):
            send.send_nowait(("error", shutdown.MESSAGE))


def _teller(send: MemoryObjectSendStream[News]) -> Callable[[str, object], None]:
    """What the engine reports (from a thread that waits for it) goes into the stream's news."""
    def tell(kind: str, value: object) -> None:
        # The stream's reader may be gone while the work goes on for others: nobody to tell.
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            anyio.from_thread.run_sync(send.send_nowait, (kind, value))
    return tell


async def simulate_stream(query: QueryFromString,
                          news: Annotated[MemoryObjectReceiveStream[News],
                                          Depends(simulation_news)],
                          ) -> AsyncIterator[ServerSentEvent]:
    """Events: ``meta``; ``progress`` (``starting``, then, once a run has taken 0.25 s, each
    stage as it starts, ``waiting for another large network to finish`` included);
    ``backward`` chunks of ||d loss / d h_t|| per layer in the order the backward sweep visits
    them (t = T-1 down to 0), sent as soon as the main run's backward pass is done, while the
    diagnostics and figures still compute; ``partial`` events ``{"name", "data"}``, pieces of
    the result a view hands over early (``progress.partial``: the rows of /chaos's phase
    diagram); ``result`` last, or ``error`` (a message) when the work failed or the server is
    stopping.

    The NumPy work runs in an engine process (app/workers.py), once, and tells this generator
    what it did through a memory object stream (``simulation_news``).
    """
    yield sse.event("meta", _meta(query))
    yield sse.event("progress", {"stage": "starting", "fraction": 0.0})
    started = anyio.current_time()
    sweep_sent = False
    stage = None  # the latest stage not sent yet
    done = None
    async with news:
        while done is None:
            told: list[News] = []
            # Sleep until there is news, or until a stage that arrived too early to show is due.
            with anyio.move_on_at(math.inf if stage is None else started + PROGRESS_EVERY):
                try:
                    told.append(await news.receive())
                except anyio.EndOfStream:  # stopped: a newer stream from this page took over
                    return
            told += _already_told(news)
            for kind, value in told:
                if kind == "sweep":
                    for text in jobs.sweep_texts(value):
                        yield sse.raw_event("backward", text)
                    sweep_sent = True
                elif kind == "stage":
                    stage = value
                elif kind == "partial":  # progress.partial: a piece of the result, sent as is
                    name, data = value
                    yield sse.event("partial", {"name": name, "data": data})
                elif kind == "done":
                    done = value
                elif kind == "error":
                    yield sse.event("error", {"message": value})
                    return
                elif kind == "stopped":  # a newer stream from this page took over
                    return
            # A quick run shows no stages (they would only flicker past).
            if (stage is not None and done is None
                    and anyio.current_time() - started >= PROGRESS_EVERY):
                name, fraction = stage
                stage = None
                yield sse.event("progress", {"stage": name, "fraction": round(fraction, 3)})
    if not sweep_sent:  # a cached result, or a view that did not hand its sweep over early
        for text in done.backward:
            yield sse.raw_event("backward", text)
    yield sse.raw_event("result", done.document)


# ---- a cached result's stream, sent as one body ----------------------------------------------

# What FastAPI's EventSourceResponse handling sets besides the media type.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def cached_stream_body(query: SimulationQuery, entry: CachedResult) -> bytes:
    """The bytes ``simulate_stream`` sends for a result already cached when it starts: ``meta``,
    ``progress`` "starting", the ``backward`` events and the ``result``. A pure function of the
    cache key (``_meta`` reads the validated fields only), so it is kept with the entry."""
    return sse.encode([
        sse.event("meta", _meta(query)),
        sse.event("progress", {"stage": "starting", "fraction": 0.0}),
        *(sse.raw_event("backward", text) for text in entry.backward),
        sse.raw_event("result", entry.document)])


async def cached_stream(request: Request) -> Response | None:
    """A cached result's stream as one plain response (its body built once, then kept in the
    cache entry); None when the result is not cached or the query is not valid (the streaming
    route then answers, with its 422 or 404).

    The same bytes as the stream, at a fraction of its CPU: no task group, no memory stream,
    no keep-alive timer and one send instead of one per event."""
    try:
        query = await _parse_query(request)
    except (RequestValidationError, ModelNotFound):
        return None
    key, cache = cache_key(query), result_cache()
    entry = cache.get(key)
    if entry is None:
        return None
    if entry.stream is None:
        entry = replace(entry, stream=cached_stream_body(query, entry))
        cache.put(key, entry)  # counted in the cache's bytes from now on
    with pages.latest(request.headers.get(PAGE_HEADER), threading.Event(), key, flights.followed):
        pass  # as a stream that ended at once: the page's older run stops (app/supersede.py)
    return Response(entry.stream, media_type="text/event-stream", headers=STREAM_HEADERS)


async def cached_get(request: Request) -> Response | None:
    """``simulate_get``'s answer when it needs no work: a 304 for a matching ``If-None-Match``,
    or the cached document; None otherwise (the route then answers, its 422 and 404 included).
    """
    try:
        query = await _parse_query(request)
    except (RequestValidationError, ModelNotFound):
        return None
    key = cache_key(query)
    headers = _cache_headers(query, key)
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    entry = result_cache().get(key)
    if entry is None:
        return None
    return Response(entry.document, media_type="application/json", headers=headers)


def cached_first(answer: Callable[[Request], Awaitable[Response | None]]) -> type[APIRoute]:
    """A route class whose handler asks ``answer`` first, for a cached result's response made
    without FastAPI's dependency solving (a large share of a cached request's CPU); None lets
    FastAPI's handling of the endpoint answer: uncached results, 422s and 404s."""

    class CachedFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            full = super().get_route_handler()

            async def handler(request: Request) -> Response:
                response = await answer(request)
                return response if response is not None else await full(request)

            return handler

    return CachedFirst


router.add_api_route("/simulate", simulate_get, methods=["GET"], openapi_extra=QUERY_OPENAPI,
                     route_class_override=cached_first(cached_get))
router.add_api_route("/simulate/stream", simulate_stream, methods=["GET"],
                     response_class=EventSourceResponse, openapi_extra=QUERY_OPENAPI,
                     route_class_override=cached_first(cached_stream))


class Preset(BaseModel):
    """A named starting point: a page, the configuration fields it sets, and the check that
    proves its point on its own numbers."""

    slug: str = Field(description="Stable name, e.g. vanishing-sigmoid.")
    title: str
    description: str = Field(description="What the preset shows, in words its numbers keep.")
    page: View = Field(description="The page (and simulation view) it opens.")
    query: dict[str, Any] = Field(description="The SimulationConfig fields it sets; the others "
                                              "take their defaults.")
    claim: str = Field(description="Id of the check in the page view's `checks` (POST "
                                   "/api/simulate?view=<page> with `query`) that proves the "
                                   "preset's point: it passes on the preset's own numbers.")
    url: str = Field(description="The preset as a site-relative link.")


@router.get("/presets", response_model=list[Preset])
def list_presets() -> list[Preset]:
    """Every preset, with the check that proves its point (its `claim`)."""
    return [Preset.model_validate(preset) for preset in presets_with_urls()]


def _meta(query: SimulationQuery) -> dict:
    """The stream's first event: what is being computed, so the page can lay out its plots."""
    meta = {"config": query.config.model_dump(), "view": query.view,
            "seq_len": query.seq_len, "num_layers": query.num_layers}
    if query.view == "bptt":  # the columns the unrolled picture draws
        meta.update(bptt_view.stream_meta(query.config))
    return meta


def _already_told(news: MemoryObjectReceiveStream[News]) -> list[News]:
    told = []
    while True:
        try:
            told.append(news.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):  # nothing yet, or "done" was the last
            return told
