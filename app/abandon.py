"""Work for a client that has gone stops at its next stage.

The stream's work already stops when its response ends (``simulation_news`` sets its stop
flag). A plain POST has no such end while its work runs: ``stop_when_gone`` listens for the
ASGI ``http.disconnect`` message beside it and, when the client goes, sets the flag the worker
checks at each ``progress.report`` (raising ``progress.Stopped``) and cancels whatever
the request still waits for (its turn in the heavy lane).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Request


@asynccontextmanager
async def stop_when_gone(request: Request) -> AsyncIterator[threading.Event]:
    """A flag set (and the block cancelled) once the client disconnects. Use after the body
    has been read: the messages left to receive are only the disconnect."""
    stop = threading.Event()
    try:
        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                stop.set()
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch)
            try:
                yield stop
            finally:
                tasks.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the task group wraps what the block raised
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None  # as raised, for its handler (or Stopped's)
        raise
