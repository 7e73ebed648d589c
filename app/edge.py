"""The layers around everything FastAPI does, so that they apply to every response, the 413 of
its body limit and the 500 of its error middleware included:

- ``SlowClientGuard`` (outermost): a send that cannot complete within ``SEND_DEADLINE`` seconds
  (a client that stopped reading, so the socket buffer stays full) closes the connection. The
  app then sees the client as gone, which ends its stream and frees what the stream held (a
  training slot, the heavy lane). Without it such a send waits forever.
- ``SecurityMiddleware`` (app/security.py): the security headers and the query-length limit.
- ``HeadAsGet``: HEAD is answered wherever GET is, with the same headers and no body.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradient_flow_lab.app.security import SecurityMiddleware

SEND_DEADLINE = 5.0  # seconds one response message may wait for a socket with room in it


class SlowClientGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False

        async def send_or_give_up(message: Message) -> None:
            nonlocal gone
            if gone:
                return  # the connection is closed: the rest goes nowhere, as for a client gone
            if not _may_wait(send):
                await send(message)
                return
            with anyio.move_on_after(SEND_DEADLINE) as waiting:
                await send(message)
            if waiting.cancelled_caught:
                gone = True
                _abort(send)

        await self.app(scope, receive, send_or_give_up)


def _may_wait(send: Send) -> bool:
    """False when ``send`` is uvicorn's and its socket takes writes now: it then returns without
    waiting (its one wait is for a paused transport to drain), so no deadline is armed. A cancel
    scope for each message of each response was a measurable share of a cached request's CPU.
    Any other ``send`` (a test client's) may wait."""
    flow = getattr(getattr(send, "__self__", None), "flow", None)
    return flow is None or flow.write_paused


def _abort(send: Send) -> None:
    """Drops the connection under ``send`` (uvicorn's response cycle keeps its transport); the
    server then tells the app ``http.disconnect``, as when the client closes."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def headers_only(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                await send(message)
            elif message["type"] == "http.response.body" and not finished:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def receive_until_answered() -> Message:
            if finished:  # a stream under way: tell it its client is gone, so it stops
                return {"type": "http.disconnect"}
            return await receive()

        await self.app({**scope, "method": "GET"}, receive_until_answered, headers_only)


def wrap(app: ASGIApp) -> ASGIApp:
    return SlowClientGuard(SecurityMiddleware(HeadAsGet(app)))
