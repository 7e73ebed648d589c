"""The server is stopping: what open streams watch so that they can say so before they end.

``begin()`` runs on the first SIGTERM or SIGINT: ``watch_signals()``, called at the app's
startup, puts it in front of the server's own handlers (uvicorn's, under ``gradient-flow-lab``,
a plain ``uvicorn ...:app`` and each of ``--workers``). Each stream waits on ``stopping()``
beside its work and, once it fires, sends a last ``error`` event with ``MESSAGE`` and ends, so
the server's graceful shutdown finds no stream left to wait for.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

RETRY_SECONDS = 60  # a 503's Retry-After while stopping, as MESSAGE says
MESSAGE = "the server is stopping; try again in a minute"

_begun = threading.Event()
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_lock = threading.Lock()


def is_stopping() -> bool:
    return _begun.is_set()


def begin() -> None:
    """Tells every stream, now and later, that the server is stopping (any thread, or a
    signal handler)."""
    _begun.set()
    with _lock:
        waiters = list(_waiters)
    for loop, event in waiters:
        if not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def watch_signals() -> None:
    """Calls ``begin()`` on SIGTERM and SIGINT, then whatever handled them before (the
    server). Only the main thread may set handlers: elsewhere (a test's app) this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if getattr(previous, "tells_streams", False):
            continue

        def handler(sig: int, frame: FrameType | None, previous: object = previous) -> None:
            begin()
            if callable(previous):
                previous(sig, frame)
            else:  # the default action (or none): as if this handler had never been set
                signal.signal(sig, previous)
                signal.raise_signal(sig)

        handler.tells_streams = True  # type: ignore[attr-defined]
        signal.signal(number, handler)


def reset() -> None:
    """For tests that run an app in-process after a shutdown was begun."""
    _begun.clear()


async def stopping() -> None:
    """Returns once the server has begun to stop (at once if it already has)."""
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    waiter = (loop, event)
    with _lock:
        _waiters.add(waiter)
    try:
        if not _begun.is_set():
            await event.wait()
    finally:
        with _lock:
            _waiters.discard(waiter)
