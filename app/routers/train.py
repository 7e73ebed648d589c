"""The training lab's stream: rnn, lstm and gru trained side by side, one event per step.

Training is the one long CPU job in the app, so it is bounded three ways: by steps, by wall
time (settings), and by how many streams may run at once (one more gets 503 + Retry-After).
Each step runs in a worker thread; the event loop only relays events, so the rest of the app
keeps answering. When the client goes away, Starlette cancels this generator at its next await
and the ``finally`` stops the work: at most one step (well under a second) runs on.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, format_sse_event

from gradient_flow_lab.app import jsonsafe
from gradient_flow_lab.app.figures import train as train_figures
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.schemas import TrainingConfig
from gradient_flow_lab.app.settings import Settings
from gradient_flow_lab.engine.io import save_safetensors
from gradient_flow_lab.engine.tasks import chance_level, sequence_length, task_shape
from gradient_flow_lab.engine.train import TrainConfig, train

router = APIRouter(prefix="/api", tags=["training"])
MAX_POINTS = TrainConfig.max_points  # per-step gradient norms sent with each step
settings = Settings.from_env()


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

    def release_once(self):
        """A callable that frees one slot the first time it is called and does nothing after."""
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self.active -= 1

        return release


slots = TrainingSlots(settings.max_training_streams)


def engine_config(config: TrainingConfig, cell: str) -> TrainConfig:
    return TrainConfig(
        task=config.task, lag=config.lag, noise=config.noise, cell=cell,
        nonlinearity=config.nonlinearity,
        hidden_size=config.hidden_size, batch_size=config.batch_size,
        optimizer=config.optimizer, lr=config.lr, clip=config.clip,
        clip_mode=config.clip_mode, truncation=config.truncation,
        forget_bias=config.forget_bias, steps=config.steps, seed=config.seed)


def _event(name: str, data: dict) -> bytes:
    clean, nonfinite = jsonsafe.to_strict(data)
    if nonfinite:
        clean["nonfinite"] = nonfinite
    return format_sse_event(event=name, data_str=jsonsafe.dumps(clean))


def _step_event(cell: str, record) -> dict:
    event = {"cell": cell, "step": record.step, "loss": record.loss,
             "grad_norm": record.grad_norm, "grad_norm_clipped": record.grad_norm_clipped,
             "time_steps": record.time_steps, "grad_norms": record.grad_norms}
    if record.accuracy is not None:  # the regression task has no accuracy
        event["accuracy"] = record.accuracy
    return event


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


async def _training_events(config: TrainingConfig) -> AsyncIterator[bytes]:
    stop = threading.Event()
    final: dict[str, dict] = {}  # cell -> the parameters after its last step
    try:
        cells = config.cell_list
        runs = {cell: train(engine_config(config, cell)) for cell in cells}
        input_size, output_size = task_shape(config.task)
        seq_len = sequence_length(config.task, config.lag)
        regression = config.task == "adding"
        chance = chance_level(config.task)
        time_steps = np.unique(np.linspace(0, seq_len - 1, min(seq_len, MAX_POINTS))
                               .round().astype(int)).tolist()
        figures = train_figures.build(cells, regression, chance, time_steps)
        yield _event("meta", {"config": config.model_dump(), "cells": cells,
                              "input_size": input_size, "output_size": output_size,
                              "seq_len": seq_len, "chance": chance,
                              "max_seconds": settings.max_training_seconds,
                              "figures": {k: figure_json(f) for k, f in figures.items()}})
        started = time.monotonic()
        reason = "finished"
        while runs:
            if time.monotonic() - started > settings.max_training_seconds:
                reason = "time limit"
                break
            # one step of every live model, off the event loop
            events = await anyio.to_thread.run_sync(_advance, runs, stop, final)
            for name, data in events:
                yield _event(name, data)
        downloads = {cell: f"/api/train/model/{trained.put(cell, params)}"
                     for cell, params in final.items()}
        yield _event("done", {"reason": reason, "seconds": time.monotonic() - started,
                              "downloads": downloads})
    finally:
        stop.set()


async def _with_release(events: AsyncIterator[bytes], release) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
    finally:
        release()


def _advance(runs: dict, stop: threading.Event, final: dict) -> list[tuple[str, dict]]:
    events = []
    for cell in list(runs):
        if stop.is_set():
            break
        record = next(runs[cell], None)
        if record is None:
            del runs[cell]
            continue
        events.append(("step", _step_event(cell, record)))
        if record.params is not None and not record.diverged:
            final[cell] = record.params
        if record.diverged:
            events.append(("diverged", {"cell": cell, "step": record.step,
                                        "message": f"{cell} diverged at step {record.step}"}))
            del runs[cell]
    return events


@router.get("/train/stream",
            responses={200: {"content": {"text/event-stream": {}}},
                       503: {"description": "every training slot is busy (see Retry-After)"}})
def train_stream(config: Annotated[TrainingConfig, Query()]) -> EventSourceResponse:
    """Events: ``meta``; ``step`` (cell, step, loss, accuracy (absent for adding), grad_norm,
    grad_norm_clipped, time_steps, grad_norms) for each model at each step; ``diverged`` for a
    model that blew up (the others go on); ``done`` last."""
    if not slots.try_acquire():
        raise HTTPException(
            status_code=503, headers={"Retry-After": "30"},
            detail=f"all {slots.limit} training slots are busy; try again in a minute")
    events = _training_events(config)
    # The generator's `finally` frees the slot, but only if the generator ever started: a client
    # that leaves before the first byte would leak it. Freeing it when the generator object is
    # collected covers that case; `release_once` makes the two paths free it exactly once.
    release = slots.release_once()
    weakref.finalize(events, release)
    return EventSourceResponse(_with_release(events, release))
