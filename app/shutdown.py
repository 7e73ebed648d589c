"""The server is stopping: what open streams watch so that they can say so before they end.

``gradient-flow-lab`` (app/cli.py) calls ``begin()`` on the first SIGTERM or SIGINT. Each
stream waits on ``stopping()`` beside its work and, once it fires, sends a last ``error``
event with ``MESSAGE`` and ends, so uvicorn's graceful shutdown finds no stream left to wait
for. (Under a plain ``uvicorn ...:app`` nobody calls ``begin()``: streams then end when the
server cancels them.)
"""

from __future__ import annotations

import asyncio
import threading

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
