"""Progress of the view being built, told from the worker thread to the stream that waits for it.

The view builders call ``report(stage, fraction)`` between their steps; the stream sends the
latest report as a ``progress`` event. Outside ``reporting`` (the POST endpoint, a notebook,
the tests) ``report`` does nothing, so the builders keep one signature everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Reporter = Callable[[str, float], None]

_reporter: ContextVar[Reporter | None] = ContextVar("progress_reporter", default=None)


def report(stage: str, fraction: float) -> None:
    """Tells the waiting stream that ``stage`` starts, ``fraction`` (0 to 1) of the way in."""
    callback = _reporter.get()
    if callback is not None:
        callback(stage, fraction)


@contextmanager
def reporting(callback: Reporter) -> Iterator[None]:
    """Sends every ``report`` made in this thread, inside the block, to ``callback``."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)
