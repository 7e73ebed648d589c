"""Long-time-lag tasks, generated on the fly from a seed (no downloads).

Each generator takes a ``np.random.Generator``, a batch size and a lag and returns a ``Batch``:
inputs (T, B, D), targets (T, B) class indices with -1 where there is no loss, or for the
regression task (T, B, 1) floats with NaN where there is no loss. The answer is asked for only at
the last step, so the error must travel back across the whole lag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._types import AnyArray, FloatArray

TASKS = ("delayed_recall", "temporal_order", "adding")


class Batch(NamedTuple):
    """One batch of a task: what ``engine.run`` takes, and what the answer looks like."""

    inputs: FloatArray  # (T, B, D)
    targets: AnyArray  # (T, B) int, or (T, B, 1) float for "adding"
    loss: str  # "cross_entropy" | "mse"
    num_classes: int  # K: classes, or 1 for regression
    chance: float  # accuracy of guessing (classification), or MSE of predicting the mean


def task_shape(task: str, num_symbols: int = 8) -> tuple[int, int]:
    """(input_size D, output_size K) of a task (K = 1 for the regression task "adding").

    Raises:
        ValueError: unknown ``task``.
    """
    if task == "delayed_recall":
        return num_symbols + 2, num_symbols
    if task == "temporal_order":
        return 8, 4
    if task == "adding":
        return 2, 1
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def sequence_length(task: str, lag: int) -> int:
    """T, the number of steps in a sequence of ``task`` at this lag: lag + 1 for delayed recall
    (the symbol, lag - 1 blanks, the cue), max(lag, 10) for temporal order, max(lag, 2) for
    adding.

    Raises:
        ValueError: unknown ``task``, ``lag`` not an integer, or lag < 1 for delayed recall.
    """
    if isinstance(lag, bool) or int(lag) != lag:
        raise ValueError(f"lag must be an integer, got {lag!r}")
    lag = int(lag)
    if task == "delayed_recall":
        if lag < 1:
            raise ValueError(f"lag must be >= 1, got {lag}")
        return lag + 1
    if task == "temporal_order":
        return max(lag, 10)
    if task == "adding":
        return max(lag, 2)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def chance_level(task: str, num_symbols: int = 8) -> float:
    """What guessing scores: for the classification tasks the accuracy of a uniform guess,
    1 / K (1/8 for delayed recall with 8 symbols, 1/4 for temporal order's four classes); for
    "adding" the mean squared error of always answering the mean sum 1, which is 1/6 (the sum of
    two U(0, 1) values has variance 2 * 1/12).

    Raises:
        ValueError: unknown ``task``.
    """
    if task == "adding":
        return 1.0 / 6.0
    return 1.0 / task_shape(task, num_symbols)[1]


def delayed_recall(rng: np.random.Generator, batch_size: int, lag: int,
                   num_symbols: int = 8, noise: float = 0.0) -> Batch:
    """A symbol at t = 0, a blank channel for lag - 1 steps, then a cue: name the symbol.

    Channels: num_symbols one-hot symbol channels, then "blank", then "cue". T = lag + 1.
    noise: standard deviation of Gaussian noise added to the symbol channels during the lag,
    which a network must learn to ignore (a gated cell can shut its input gate; a plain RNN
    cannot).

    Raises:
        ValueError: lag < 1 or batch_size < 1.
    """
    _check_batch_size(batch_size)
    seq_len = sequence_length("delayed_recall", lag)
    inputs = np.zeros((seq_len, batch_size, num_symbols + 2))
    symbols = rng.integers(0, num_symbols, batch_size)
    inputs[0, np.arange(batch_size), symbols] = 1.0
    inputs[1:-1, :, num_symbols] = 1.0  # blank
    if noise:
        inputs[1:-1, :, :num_symbols] = noise * rng.standard_normal((lag - 1, batch_size,
                                                                     num_symbols))
    inputs[-1, :, num_symbols + 1] = 1.0  # cue: answer now
    targets = np.full((seq_len, batch_size), -1, dtype=np.int64)
    targets[-1] = symbols
    return Batch(inputs, targets, "cross_entropy", num_symbols,
                 chance_level("delayed_recall", num_symbols))


def temporal_order(rng: np.random.Generator, batch_size: int, lag: int) -> Batch:
    """Hochreiter & Schmidhuber (1997), task 6a: distractor symbols a, b, c, d fill a sequence
    framed by start and end markers; two relevant symbols, each X or Y, hide at random positions
    in [0.1T, 0.2T] and [0.5T, 0.6T]. Classify their order: XX, XY, YX or YY (4 classes).

    Channels: a, b, c, d, X, Y, start, end. T = max(lag, 10).

    Raises:
        ValueError: batch_size < 1 or a lag that is not an integer.
    """
    _check_batch_size(batch_size)
    seq_len = sequence_length("temporal_order", lag)
    inputs = np.zeros((seq_len, batch_size, 8))
    columns = np.arange(batch_size)
    distractors = rng.integers(0, 4, (seq_len, batch_size))
    inputs[np.arange(seq_len)[:, None], columns, distractors] = 1.0
    first = rng.integers(int(0.1 * seq_len), int(0.2 * seq_len) + 1, batch_size)
    second = rng.integers(int(0.5 * seq_len), int(0.6 * seq_len) + 1, batch_size)
    first = np.clip(first, 1, seq_len - 2)
    second = np.clip(np.maximum(second, first + 1), 1, seq_len - 2)
    which = rng.integers(0, 2, (2, batch_size))  # 0 = X, 1 = Y
    for position, kind in ((first, which[0]), (second, which[1])):
        inputs[position, columns, :] = 0.0
        inputs[position, columns, 4 + kind] = 1.0
    inputs[0, :, :] = 0.0
    inputs[0, :, 6] = 1.0  # start
    inputs[-1, :, :] = 0.0
    inputs[-1, :, 7] = 1.0  # end: answer now
    targets = np.full((seq_len, batch_size), -1, dtype=np.int64)
    targets[-1] = 2 * which[0] + which[1]
    return Batch(inputs, targets, "cross_entropy", 4, chance_level("temporal_order"))


def adding(rng: np.random.Generator, batch_size: int, lag: int) -> Batch:
    """Hochreiter & Schmidhuber (1997), as popularised by Le et al. (2015): each step carries a
    random value in [0, 1] and a marker; exactly two steps are marked, one in each half. Output the
    sum of the two marked values at the last step (a regression, squared error).

    Predicting the mean sum, 1, has an expected squared error of 1/6: the "chance" level.
    T = max(lag, 2).

    Raises:
        ValueError: batch_size < 1 or a lag that is not an integer.
    """
    _check_batch_size(batch_size)
    seq_len = sequence_length("adding", lag)
    half = seq_len // 2
    inputs = np.zeros((seq_len, batch_size, 2))
    inputs[:, :, 0] = rng.uniform(0.0, 1.0, (seq_len, batch_size))
    columns = np.arange(batch_size)
    first = rng.integers(0, half, batch_size)
    second = rng.integers(half, seq_len, batch_size)
    inputs[first, columns, 1] = 1.0
    inputs[second, columns, 1] = 1.0
    targets = np.full((seq_len, batch_size, 1), np.nan)
    targets[-1, :, 0] = inputs[first, columns, 0] + inputs[second, columns, 0]
    return Batch(inputs, targets, "mse", 1, chance_level("adding"))


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], Batch]] = {
    "delayed_recall": delayed_recall, "temporal_order": temporal_order, "adding": adding}


def make_batch(task: str, rng: np.random.Generator, batch_size: int, lag: int,
               noise: float = 0.0) -> Batch:
    """A batch of ``task`` (see each generator for its layout).

    Args:
        task: "delayed_recall" | "temporal_order" | "adding".
        rng: the source of every random number.
        batch_size: B >= 1.
        lag: the distance the answer must be carried, in steps (T from ``sequence_length``).
        noise: delayed recall only (see ``delayed_recall``).
    Returns:
        A ``Batch``: inputs (T, B, D), targets (T, B) or (T, B, 1).
    Raises:
        ValueError: unknown task, batch_size < 1, or a lag the task cannot use.
    """
    if task == "delayed_recall":
        return delayed_recall(rng, batch_size, lag, noise=noise)
    try:
        generator = GENERATORS[task]
    except KeyError:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}") from None
    return generator(rng, batch_size, lag)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
