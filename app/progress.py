"""Progress of the view being built, told from the worker thread to the stream that waits for it.

The view builders call ``report(stage, fraction)`` between their steps, and ``sweep_ready``
with the gradient norms of their main run as soon as its backward pass is done: the stream
sends the stage as a ``progress`` event and the sweep as ``backward`` events while the rest of
the view (diagnostics, figures) is still computing. Outside ``reporting`` (the POST endpoint,
a notebook, the tests) both do nothing, so the builders keep one signature everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

# Called with ("stage", (stage, fraction)) or ("sweep", grad_norms of shape (L, T)).
Listener = Callable[[str, object], None]

_listener: ContextVar[Listener | None] = ContextVar("progress_listener", default=None)


def report(stage: str, fraction: float) -> None:
    """Tells the waiting stream that ``stage`` starts, ``fraction`` (0 to 1) of the way in."""
    listener = _listener.get()
    if listener is not None:
        listener("stage", (stage, fraction))


def sweep_ready(grad_norms: np.ndarray) -> None:
    """Hands the stream ||d loss / d h_t|| (L, T) of the view's main run, once it is known."""
    listener = _listener.get()
    if listener is not None:
        listener("sweep", grad_norms)


@contextmanager
def reporting(listener: Listener) -> Iterator[None]:
    """Sends every ``report`` and ``sweep_ready`` made in this thread, inside the block, to
    ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
