"""The work the engine's processes do (app/workers.py), and the results as they are sent.

Nothing here imports the web framework: a worker process imports this module (and the engine,
views and figures through it) and nothing else of the app.

- ``simulation(query)``: a page's view, as the result cache keeps it (``CachedResult``: the
  strict-JSON result document and the ``backward`` events' data).
- Training: ``TrainingRun`` steps the rnn, lstm and gru of one training request side by side.
  In a worker process, ``start_training``, ``step_training`` and ``final_parameters`` keep one
  run between calls (a training run has a process of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from gradient_flow_lab.app import jsonsafe, lean, modelstore, progress
from gradient_flow_lab.app.figures import train as train_figures
from gradient_flow_lab.app.figures.common import figure_json
from gradient_flow_lab.app.resultcache import CachedResult
from gradient_flow_lab.app.schemas import SimulationQuery, TrainingConfig
from gradient_flow_lab.app.views import ViewResult, build_view
from gradient_flow_lab.engine.tasks import chance_level, sequence_length, task_shape
from gradient_flow_lab.engine.train import (
    LEARNED_ACCURACY,
    LEARNED_WINDOW,
    TrainConfig,
    train,
)

STREAM_CHUNKS = 24  # the backward sweep arrives in about this many time-ordered pieces
MAX_POINTS = TrainConfig.max_points  # per-step gradient norms sent with each training step
Events = list[tuple[str, dict]]


# ---- simulations ----------------------------------------------------------------------------

def simulation(query: SimulationQuery, store: dict | None = None) -> CachedResult:
    """The view of ``query``, as the cache keeps it. Inside ``progress.reporting`` it tells its
    stages and stops (``progress.Stopped``) at the next one once it is told to. ``store``: the
    server's model store (``ModelStore.spec()``), for a query about an uploaded model."""
    if store is not None:
        modelstore.use_store(store)
    result = build_view(query.config, query.view)
    progress.report("writing the result", 0.95)
    return cached_entry(query, result)


def cached_entry(query: SimulationQuery, result: ViewResult) -> CachedResult:
    """What the cache keeps of a finished view: the result document and the backward events'
    data, as the strict-JSON text that goes on the wire (a hit then does no NumPy work)."""
    return CachedResult(jsonsafe.dumps(result_document(query, result)),
                        tuple(sweep_texts(result.primary.grad_norms)))


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
    document = lean.share_arrays(document)  # no array twice: later copies refer to the first
    document["nonfinite"] = nonfinite  # where nulls stand for inf or nan
    return document


def sweep_texts(norms: np.ndarray) -> Iterator[str]:
    """The data of the ``backward`` events of ||d loss / d h_t|| (L, T), strict JSON, in about
    STREAM_CHUNKS time-ordered pieces from t = T-1 down to 0."""
    seq_len = norms.shape[1]
    size = max(1, -(-seq_len // STREAM_CHUNKS))
    for stop in range(seq_len, 0, -size):
        steps = list(range(stop - 1, max(stop - size, 0) - 1, -1))
        yield jsonsafe.event_text({"steps": steps, "norms": norms[:, steps].T,
                                   "seq_len": seq_len})


# ---- training -------------------------------------------------------------------------------

def engine_config(config: TrainingConfig, cell: str) -> TrainConfig:
    return TrainConfig(
        task=config.task, lag=config.lag, noise=config.noise, cell=cell,
        nonlinearity=config.nonlinearity,
        hidden_size=config.hidden_size, batch_size=config.batch_size,
        optimizer=config.optimizer, lr=config.lr, clip=config.clip,
        clip_mode=config.clip_mode, truncation=config.truncation,
        forget_bias=config.forget_bias, update_bias=config.update_bias, steps=config.steps,
        seed=config.seed)


def gate_value(bias: float) -> str:
    """sigmoid(bias) with as many decimals as it takes to show how far it is from 0 or 1 (at
    least 2): 0.99995 for 10, 0.95 for 3, 0.5 for 0. static/js/train.js formats it the same."""
    value = 1.0 / (1.0 + math.exp(-bias))
    distance = min(value, 1.0 - value)
    decimals = 2 if distance <= 0 else max(2, math.ceil(-math.log10(distance)))
    return f"{round(value, decimals):.{decimals}f}".rstrip("0").rstrip(".")


def number_text(value: float) -> str:
    """A setting as typed: 10, 2.5, -1 (static/js/train.js: String(value))."""
    return f"{value:g}"


def bias_sentence(config: TrainingConfig) -> str:
    """Which gate biases each model of the run started with, e.g. "RNN: none; LSTM: forget-gate
    bias 10 (f ≈ 0.99995); GRU: update-gate bias 3 (z ≈ 0.95)". The /train page shows it, and
    static/js/train.js builds the same words from the controls before a run starts."""
    parts = []
    for cell in config.cell_list:
        if cell == "lstm":
            parts.append(f"LSTM: forget-gate bias {number_text(config.forget_bias)} "
                         f"(f ≈ {gate_value(config.forget_bias)})")
        elif cell == "gru":
            parts.append(f"GRU: update-gate bias {number_text(config.update_bias)} "
                         f"(z ≈ {gate_value(config.update_bias)})")
        else:
            parts.append("RNN: none")
    return "; ".join(parts)


def _step_event(cell: str, record) -> dict:  # type: ignore[no-untyped-def]
    event = {"cell": cell, "step": record.step, "loss": record.loss,
             "grad_norm": record.grad_norm, "grad_norm_clipped": record.grad_norm_clipped,
             "time_steps": record.time_steps, "grad_norms": record.grad_norms}
    if record.accuracy is not None:  # the regression task has no accuracy
        event["accuracy"] = record.accuracy
    return event


class TrainingRun:
    """The models of one training request (``config.cell_list``), stepped together.

    ``first``: the ``meta`` event; ``step(should_stop)``: one step of every live model (its
    events), None once all have finished; ``final``: each model's parameters after its latest
    good step (what the trained-model download serves)."""

    def __init__(self, config: TrainingConfig, max_seconds: float) -> None:
        cells = config.cell_list
        self.runs = {cell: train(engine_config(config, cell)) for cell in cells}
        self.final: dict[str, dict] = {}
        input_size, output_size = task_shape(config.task)
        seq_len = sequence_length(config.task, config.lag)
        regression = config.task == "adding"
        chance = chance_level(config.task)
        time_steps = np.unique(np.linspace(0, seq_len - 1, min(seq_len, MAX_POINTS))
                               .round().astype(int)).tolist()
        figures = train_figures.build(cells, regression, chance, time_steps)
        self.first: Events = [("meta", {
            "config": config.model_dump(), "cells": cells,
            "input_size": input_size, "output_size": output_size,
            "seq_len": seq_len, "chance": chance, "max_seconds": max_seconds,
            "biases": bias_sentence(config),
            "learned": {"accuracy": LEARNED_ACCURACY, "window": LEARNED_WINDOW},
            "figures": {k: figure_json(f) for k, f in figures.items()}})]

    def step(self, should_stop: Callable[[], bool]) -> Events | None:
        if not self.runs:
            return None
        events: Events = []
        for cell in list(self.runs):
            if should_stop():
                break
            record = next(self.runs[cell], None)
            if record is None:
                del self.runs[cell]
                continue
            events.append(("step", _step_event(cell, record)))
            if record.params is not None and not record.diverged:
                self.final[cell] = record.params
            if record.diverged:
                events.append(("diverged", {"cell": cell, "step": record.step,
                                            "message": f"{cell} diverged at step {record.step}"}))
                del self.runs[cell]
        return events


_run: TrainingRun | None = None  # in a worker process: the run it serves


def start_training(config: TrainingConfig, max_seconds: float) -> Events:
    """In a worker process: starts its run; returns the run's first events."""
    global _run
    _run = TrainingRun(config, max_seconds)
    return _run.first


def step_training() -> Events | None:
    """In a worker process: one step of its run (``TrainingRun.step``)."""
    if _run is None:
        raise RuntimeError("no training run was started in this process")
    return _run.step(progress.stop_requested)


def final_parameters() -> dict[str, dict]:
    """In a worker process: its run's ``final`` parameters."""
    return {} if _run is None else _run.final
