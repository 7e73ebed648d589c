"""Progress of the view being built, told from the worker (a process of app/workers.py, or a
thread) to the stream that waits for it.

The view builders call ``report(stage, fraction)`` between their steps, ``partial(name, data)``
for a piece of their result that is ready early (a page may draw it at once), and ``sweep_ready``
with the gradient norms of their main run as soon as its backward pass is done: the stream
sends the stage as a ``progress`` event and the sweep as ``backward`` events while the rest of
the view (diagnostics, figures) is still computing. Outside ``reporting`` (the POST endpoint,
a notebook, the tests) both do nothing, so the builders keep one signature everywhere.

They are also where a view stops early: once the stream's ``stop`` event is set (its client
left), the next ``report`` or ``sweep_ready`` raises ``Stopped``, so an abandoned run frees its
thread (and the heavy lane) at its next stage instead of computing figures nobody will see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

import numpy as np

# Called with ("stage", (stage, fraction)), ("sweep", grad_norms of shape (L, T)) or
# ("partial", (name, data)).
Listener = Callable[[str, object], None]


class StopFlag(Protocol):
    """A threading.Event, or a multiprocessing one in the engine's worker processes."""

    def is_set(self) -> bool: ...


_listener: ContextVar[tuple[Listener, StopFlag | None] | None] = ContextVar(
    "progress_listener", default=None)


class Stopped(Exception):
    """The stream waiting for this view is gone: the view stops here."""


def _tell(kind: str, value: object) -> None:
    told = _listener.get()
    if told is None:
        return
    listener, stop = told
    if stop is not None and stop.is_set():  # one Event.is_set per report: cheap
        raise Stopped
    listener(kind, value)


def report(stage: str, fraction: float) -> None:
    """Tells the waiting stream that ``stage`` starts, ``fraction`` (0 to 1) of the way in."""
    _tell("stage", (stage, fraction))


def sweep_ready(grad_norms: np.ndarray) -> None:
    """Hands the stream ||d loss / d h_t|| (L, T) of the view's main run, once it is known."""
    _tell("sweep", grad_norms)


def partial(name: str, data: dict) -> None:
    """Hands the stream a piece of the result that is ready before the rest (a row of the phase
    diagram): it goes out as a ``partial`` event ``{"name": name, "data": data}``, in strict JSON
    (non-finite numbers nulled and listed under ``nonfinite``)."""
    _tell("partial", (name, data))


def stop_requested() -> bool:
    """Whether the work reporting here has been told to stop (for loops with no stages, such as
the training steps)."""
    told = _listener.get()
    return told is not None and told[1] is not None and told[1].is_set()


@contextmanager
def reporting(listener: Listener, stop: StopFlag | None = None) -> Iterator[None]:
    """Sends every ``report`` and ``sweep_ready`` made in this thread, inside the block, to
    ``listener``; once ``stop`` is set, they raise ``Stopped`` instead."""
    token = _listener.set((listener, stop))
    try:
        yield
    finally:
        _listener.reset(token)
