"""The training lab's stream: rnn, lstm and gru trained side by side, one event per step.

Training is the one long CPU job in the app, so it is bounded three ways: by steps, by wall
time (settings), and by how many streams may run at once (one more gets 503 + Retry-After).
A run's steps are made in an engine process of its own (app/workers.py, the model code in
app/jobs.py); the event loop only relays events, so the rest of the app keeps answering.
Identical requests share one run (``app/trainshare.py``): the run, not each client, holds the
training slot, and it stops (at most one step later, well under a second)
when it finishes, hits the time limit, or its last client goes away; the slot is then freed.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from gradient_flow_lab.app import jobs, shutdown, sse, workers
from gradient_flow_lab.app.jobs import Events
from gradient_flow_lab.app.resultcache import cache_key
from gradient_flow_lab.app.schemas import TrainingConfig
from gradient_flow_lab.app.settings import Settings, get_settings
from gradient_flow_lab.app.trainshare import SharedRun, Step, training_runs
from gradient_flow_lab.engine.io import save_safetensors

router = APIRouter(prefix="/api", tags=["training"])
logger = logging.getLogger(__name__)
RETRY_SECONDS = 30  # the Retry-After of a 503, and what its message says


class TrainingSlots:
    """At most ``limit`` training streams at once; never waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1


@lru_cache
def _slots_for(limit: int) -> TrainingSlots:
    return TrainingSlots(limit)


def get_training_slots(settings: Annotated[Settings, Depends(get_settings)]) -> TrainingSlots:
    """The process's training slots, as many as ``settings.max_training``."""
    return _slots_for(settings.max_training)


def slots_busy(slots: TrainingSlots) -> HTTPException:
    """The 503 for a training that finds every slot taken; its text agrees with Retry-After."""
    return HTTPException(
        status_code=503, headers={"Retry-After": str(RETRY_SECONDS)},
        detail=f"all {slots.limit} training slots are busy; try again in {RETRY_SECONDS} seconds")


class TrainedModels:
    """The final parameters of finished training runs, kept a few minutes for download as
    .safetensors: bounded by count (oldest dropped) and age; in memory, per process."""

    def __init__(self, limit: int = 32, seconds: float = 900.0) -> None:
        self.limit, self.seconds = limit, seconds
        self._items: OrderedDict[str, tuple[float, str, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, cell: str, params: dict) -> str:
        key = secrets.token_hex(16)
        with self._lock:
            self._items[key] = (time.monotonic(), cell, params)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> tuple[str, dict] | None:
        """(cell, params), or None once dropped."""
        with self._lock:
            now = time.monotonic()
            for old in [k for k, (t, _, _) in self._items.items() if now - t > self.seconds]:
                del self._items[old]
            item = self._items.get(key)
        return None if item is None else item[1:]


trained = TrainedModels()


@router.get("/train/model/{key}", responses={404: {"description": "expired or unknown"}})
def download_trained(key: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]) -> Response:
    """The parameters a finished training run ended with, as .safetensors (float64; PyTorch
    state_dict keys, the read-out as head.weight/head.bias). Kept 15 minutes after the run."""
    item = trained.get(key)
    if item is None:
        raise HTTPException(404, "this trained model is no longer kept (15 minutes, 32 models); "
                                 "train it again")
    cell, params = item
    return Response(save_safetensors(params), media_type="application/octet-stream",
                    headers={"Content-Disposition":
                             f'attachment; filename="trained-{cell}.safetensors"'})


# ---- one shared run per configuration (app/trainshare.py) ------------------------------------

def _start_training(config: TrainingConfig, max_seconds: float,
                    ) -> tuple[Events, Step, Callable[[], dict], Callable[[], None]]:
    """A new run: its first events (``meta``), its step function (one step of every live
    model, None once all have finished), what its ``done`` event adds (a download link per
    model) and how to free what it holds. Blocking: call it in a thread. The run has an engine
    process of its own (app/workers.py), which keeps its state between steps; with
    GFL_ENGINE_PROCESSES=0 it runs in this process instead."""
    worker = workers.dedicated()
    if worker is None:
        run = jobs.TrainingRun(config, max_seconds)
        first: Events = run.first

        def step(stop: threading.Event) -> Events | None:
            return run.step(stop.is_set)

        def final() -> dict[str, dict]:
            return run.final

        def close() -> None:
            pass
    else:
        try:
            first = worker.call(jobs.start_training, config, max_seconds)
        except BaseException:
            worker.close()
            raise

        def step(stop: threading.Event) -> Events | None:
            return worker.call(jobs.step_training, stop=stop)

        def final() -> dict[str, dict]:
            return worker.call(jobs.final_parameters) if worker.alive() else {}

        close = worker.close

    def downloads() -> dict:
        return {"downloads": {cell: f"/api/train/model/{trained.put(cell, params)}"
                              for cell, params in final().items()}}

    return first, step, downloads, close


async def shared_training(config: Annotated[TrainingConfig, Query()],
                          settings: Annotated[Settings, Depends(get_settings)],
                          slots: Annotated[TrainingSlots, Depends(get_training_slots)],
                          ) -> AsyncIterator[Callable[[], AsyncIterator[ServerSentEvent]]]:
    """Follows the one run of this configuration: a finished one replayed, a running one joined
    (its events so far, then live), or a new one, which takes a training slot (503 when none is
    free) and gives it back when the run ends. Only a new run costs a slot."""
    max_seconds = settings.max_training_seconds
    key = f"{cache_key(config)} max_seconds={max_seconds}"
    runs = training_runs()

    async def start() -> SharedRun:
        if not slots.try_acquire():
            raise slots_busy(slots)
        try:
            first, step, done_extra, close = await anyio.to_thread.run_sync(
                _start_training, config, max_seconds)
        except BaseException:
            slots.release()
            raise

        def ended(run: SharedRun) -> None:
            close()
            slots.release()
            runs.ended(key, run)

        return SharedRun(first, step, max_seconds, ended, done_extra)

    async with runs.follow(key, start) as events:
        yield events


@router.get("/train/stream", response_class=EventSourceResponse,
            responses={503: {"description": "every training slot is busy (see Retry-After)"}})
async def train_stream(config: Annotated[TrainingConfig, Query()],
                       events: Annotated[Callable[[], AsyncIterator[ServerSentEvent]],
                                         Depends(shared_training)],
                       ) -> AsyncIterator[ServerSentEvent]:
    """Events: ``meta``; ``step`` (cell, step, loss, accuracy (absent for adding), grad_norm,
    grad_norm_clipped, time_steps, grad_norms) for each model at each step; ``diverged`` for a
    model that blew up (the others go on); ``done`` last (reason ``finished`` or ``time
    limit``, and a download link per trained model), or ``error``.

    A client that stops reading is cut off after a few seconds (app/edge.py); a failing step or
    a server that is stopping ends the stream with ``error`` and a message.

    Identical requests share one run (``shared_training``): the same configuration and seed give
    the same events, whoever asks and whenever."""
    try:
        async for event in events():
            if shutdown.is_stopping():
                yield sse.event("error", {"message": shutdown.MESSAGE})
                return
            yield event
    except Exception as error:  # a bug: the page gets words, the log the traceback
        logger.exception("training failed: %s", config.model_dump())
        yield sse.event("error", {"message": f"the training failed on the server "
                                             f"({type(error).__name__}: {error})"})
