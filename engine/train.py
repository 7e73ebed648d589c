"""Training on the long-lag tasks, one step at a time, as a generator (pure NumPy, float64).

    for record in train(TrainConfig(cell="lstm", lag=40)):
        print(record.step, record.loss, record.accuracy)

The caller decides when to stop (a web stream stops when its client goes away). The data come
from ``seed`` alone, so models trained with the same seed see exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import optim
from ._types import FloatArray, IntArray, Params
from .bptt import InitialState, run
from .clip import clip_grad_norm, clip_grad_value, global_norm
from .diagnostics import norm
from .params import init_params
from .tasks import Batch, make_batch, task_shape

# What the lab calls "learned" (the /train page and tests/benchmark_training.py): the mean
# accuracy over the last LEARNED_WINDOW steps at least LEARNED_ACCURACY.
LEARNED_ACCURACY = 0.95
LEARNED_WINDOW = 10
# Losses on these tasks start near log(8) or 1/6; one a million times larger has blown up, even if
# it is still a finite number (a ReLU net can swing between 1e150 and 1e6 before reaching inf).
DIVERGED_LOSS = 1e6


@dataclass(frozen=True)
class TrainConfig:
    task: str = "delayed_recall"  # "delayed_recall" | "temporal_order" | "adding"
    lag: int = 40
    noise: float = 0.5  # delayed recall: std of the noise on the symbol channels during the lag
    cell: str = "lstm"
    nonlinearity: str = "tanh"  # rnn only
    hidden_size: int = 32
    batch_size: int = 32
    optimizer: str = "adam"  # "sgd" | "momentum" | "adam"
    lr: float = 1e-2
    clip: float = 1.0  # 0 = no clipping
    clip_mode: str = "norm"  # "norm" (global norm) | "value" (per element)
    truncation: int = 0  # 0 = full BPTT; k = chunks of k steps, an update after each chunk
    forget_bias: float = 10.0  # lstm only: sigmoid(10) = 0.99995, the cell keeps its content
    # gru only: the update gate's bias (b_iz; engine.init_params). z = sigmoid(3) = 0.95 carries
    # the state (h' = (1 - z) n + z h); chosen by tests/benchmark_training.py (README)
    update_bias: float = 3.0
    init: str = "default"
    steps: int = 2000
    seed: int = 0
    max_points: int = 200  # at most this many points of ||d loss / d h_t|| per record


@dataclass(frozen=True)
class StepRecord:
    step: int  # 1-based
    loss: float  # mean loss per sequence
    accuracy: float | None  # at the answer step; None for the regression task
    grad_norm: float  # global norm of the (batch-mean) gradient before clipping
    grad_norm_clipped: float  # ... and after
    time_steps: IntArray  # (n,) the steps t of the sequence the norms below belong to
    grad_norms: FloatArray  # (n,) ||d loss / d h_t|| of the top layer (per sequence)
    diverged: bool  # loss or gradient inf or nan, or loss > DIVERGED_LOSS: this model stops
    # the parameters after this step's update (shared, not copied: the next step makes new ones)
    params: Params | None = field(default=None, repr=False, compare=False)


def train(config: TrainConfig, *, params: Params | None = None) -> Iterator[StepRecord]:
    """Yields one ``StepRecord`` per training step (one batch); stops after ``config.steps``
    steps or right after a divergence.

    params: start from these (keys as ``engine.init_params``) instead of a fresh init.
    Raises (on the first ``next``):
        ValueError: an unknown task, cell, optimizer or clip_mode, or sizes the engine rejects.
    """
    input_size, output_size = task_shape(config.task)
    if params is None:
        params = init_params(config.cell, input_size, config.hidden_size, output_size,
                             init=config.init, forget_bias=config.forget_bias,
                             update_bias=config.update_bias, seed=config.seed)
    state = optim.init_state(config.optimizer, params)
    data_rng = np.random.default_rng([config.seed, 1])  # the same batches for every cell
    for step in range(1, config.steps + 1):
        batch = make_batch(config.task, data_rng, config.batch_size, config.lag, config.noise)
        params, state, record = _train_step(config, params, state, batch, step)
        yield record
        if record.diverged:
            return


def _train_step(config: TrainConfig, params: Params, state: optim.OptimizerState,
                batch: Batch, step: int) -> tuple[Params, optim.OptimizerState, StepRecord]:
    seq_len, batch_size = batch.inputs.shape[:2]
    chunk = config.truncation or seq_len
    h0: InitialState = None
    total_loss = 0.0
    grad_sum = {k: np.zeros_like(v) for k, v in params.items()}
    grad_hidden_norms = np.zeros(seq_len)
    last_logits = np.zeros(0)
    for start in range(0, seq_len, chunk):
        stop = min(start + chunk, seq_len)
        trace = run(config.cell, params, batch.inputs[start:stop], batch.targets[start:stop],
                    nonlinearity=config.nonlinearity, h0=h0, loss=batch.loss)
        # carry the state, not the gradient, into the next chunk
        h0 = trace.hidden[:, -1]
        if trace.cell is not None:
            h0 = (h0, trace.cell[:, -1])
        total_loss += trace.loss
        last_logits = trace.logits[-1]
        grad_hidden_norms[start:stop] = norm(trace.grad_hidden[-1], axis=(1, 2)) / batch_size
        if not np.any(_has_target(batch, start, stop)):
            continue  # no loss in this chunk: nothing to learn from, no update
        grads = {k: g / batch_size for k, g in trace.grads.items()}  # batch mean
        for k in grad_sum:
            grad_sum[k] += grads[k]
        clipped = _clip(config, grads)
        params, state = optim.step(config.optimizer, params, clipped, state, config.lr)

    grad_norm = global_norm(grad_sum)
    loss = total_loss / batch_size
    diverged = not (np.isfinite(loss) and np.isfinite(grad_norm) and loss < DIVERGED_LOSS)
    accuracy = None
    if batch.loss == "cross_entropy":
        answer = batch.targets[-1]
        accuracy = float(np.mean(np.argmax(last_logits, axis=-1) == answer))
    points = np.unique(np.linspace(0, seq_len - 1, min(seq_len, config.max_points))
                       .round().astype(int))
    record = StepRecord(step=step, loss=float(loss), accuracy=accuracy, grad_norm=grad_norm,
                        grad_norm_clipped=global_norm(_clip(config, grad_sum)),
                        time_steps=points, grad_norms=grad_hidden_norms[points],
                        diverged=bool(diverged), params=params)
    return params, state, record


def _has_target(batch: Batch, start: int, stop: int) -> npt.NDArray[np.bool_]:
    targets = batch.targets[start:stop]
    if batch.loss == "mse":
        return np.asarray(~np.isnan(targets).any(axis=-1))
    return np.asarray(targets >= 0)


def _clip(config: TrainConfig, grads: Params) -> Params:
    if not config.clip:
        return grads
    if config.clip_mode == "norm":
        return clip_grad_norm(grads, config.clip)[0]
    if config.clip_mode == "value":
        return clip_grad_value(grads, config.clip)
    raise ValueError(f"clip_mode must be 'norm' or 'value', got {config.clip_mode!r}")


def with_changes(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with some fields changed (``dataclasses.replace``)."""
    return replace(config, **changes)


def learned_step(accuracies: list[float] | npt.NDArray[np.float64]) -> int | None:
    """The first 1-based step at which the mean accuracy over the last ``LEARNED_WINDOW`` steps
    reaches ``LEARNED_ACCURACY`` (what the /train page marks "learned"), or None."""
    values = np.asarray(accuracies, dtype=float)
    if len(values) < LEARNED_WINDOW:
        return None
    means = np.convolve(values, np.ones(LEARNED_WINDOW) / LEARNED_WINDOW, mode="valid")
    hits = np.flatnonzero(means >= LEARNED_ACCURACY - 1e-12)
    return None if len(hits) == 0 else int(hits[0]) + LEARNED_WINDOW
