"""Connection limits of the server: what ``gradient-flow-lab`` passes to uvicorn.

The HTTP parser is httptools (llhttp, in C): uvicorn's pure-Python h11 parser, its fallback,
took a large share of the CPU of a cached request.

uvicorn closes a kept-alive connection that stays idle after a response, but never one that
sends nothing, or sends its request line and headers a byte at a time: enough of those hold
every file descriptor. ``HeaderTimeoutProtocol`` gives every connection ``HEADER_TIMEOUT``
seconds, from when it opens or from its last response, to finish a request's headers, and
closes it otherwise. Its body then has HEADER_TIMEOUT seconds plus its length at 64 KiB/s (a
chunked one 60 s). A request whose whole body arrived runs as long as it needs.

It also caps each connection's kernel send buffer (``SEND_BUFFER_BYTES``; Linux lets it grow to
4 MB by itself). A client that stops reading then fills it within seconds, and app/edge.py's
send deadline ends its response; with 4 MB a training stream took over a minute to fill it,
holding its slot all that time, and a thousand such clients could pin 4 GB of kernel memory.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gradient_flow_lab.app.security import SECURITY_HEADERS

HEADER_TIMEOUT = 10.0  # seconds to send a request's headers
MIN_BODY_RATE = 64 * 1024  # bytes per second a request body must at least arrive at
BODY_TIMEOUT = 60.0  # seconds for a chunked body (its length is not known up front)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle kept-alive connection stays open (uvicorn's default)
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (h11's limit, which we had)
GRACEFUL_SHUTDOWN_SECONDS = 5  # after SIGTERM, then open requests are cancelled
BACKLOG = 1024  # connections the kernel queues before the server accepts them
BUSY_RETRY_SECONDS = 5  # the Retry-After of a 503 beyond the connection limit
SEND_BUFFER_BYTES = 128 * 1024  # the kernel doubles it: 256 KB of unread data per connection


class HeadTooLarge(Exception):
    """Raised from a parser callback: the parser stops and uvicorn answers 400 and closes."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for headers, a size limit for them and a
    bounded send buffer.

    The size limit: llhttp sets none, and httptools gathers a header's value in memory until
    the next header starts. A head that completes is measured exactly, from the parser's
    callbacks; one that does not is bounded by the bytes received while it is incomplete
    (counted from the chunk after the previous request ended, so at most one read over the
    limit). Either way over ``MAX_HEADER_BYTES`` gets uvicorn's 400 ("Invalid HTTP request
    received.") and the connection closes, as h11 answered before."""

    _header_deadline: asyncio.TimerHandle | None = None
    _body_deadline: asyncio.TimerHandle | None = None
    _reading_head = True  # between a request's end (or the connection's start) and its headers'
    _head_bytes = 0  # received while the head was incomplete at the end of a read
    _head_size = 0  # the current head's URL and header lines, as the parser handed them over
    _message_ended = False  # a request ended during the current read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._message_ended = False
        super().data_received(data)
        if not self._reading_head or self.transport.is_closing():
            return
        self._head_bytes = 0 if self._message_ended else self._head_bytes + len(data)
        if self._head_bytes > MAX_HEADER_BYTES:
            self.logger.warning("Request headers larger than %d bytes.", MAX_HEADER_BYTES)
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        super().on_headers_complete()
        self._arm_body_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = self._message_ended = True
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _arm_body_deadline(self) -> None:
        """A body must arrive within HEADER_TIMEOUT plus its length at MIN_BODY_RATE (a chunked
        one within BODY_TIMEOUT): one trickled a byte at a time would hold its connection, and
        a slot under the connection limit, for as long as its sender likes."""
        headers = dict(self.headers)
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return  # the parser refuses it anyway
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            seconds = BODY_TIMEOUT
        elif length > 0:
            seconds = HEADER_TIMEOUT + length / MIN_BODY_RATE
        else:
            return
        self._body_deadline = self.loop.call_later(seconds, self._body_too_slow)

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if not self.transport.is_closing() and not self._reading_head:
            self.logger.info("Request body too slow: connection closed.")
            self.transport.close()  # the app sees the client gone (a quiet ClientDisconnect)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # kept alive: the next request's headers are due
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        for deadline in (self._header_deadline, self._body_deadline):
            if deadline is not None:
                deadline.cancel()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGIApp) -> None:
        """``GET``/``HEAD /healthz`` is answered here, as soon as its headers are parsed, instead
        of in a task of its own: a task waits its turn behind every request the event loop is
        serving, so under a class's load a health check took as long as any request (p99 above
        50 ms with 100 busy clients). Its answer is the app's (``liveness``; a test compares
        them), and it still proves what a liveness probe asks: this loop is turning."""
        scope = cycle.scope
        if (app is self.app and scope["path"] == HEALTH_PATH
                and scope["method"] in ("GET", "HEAD") and not self.flow.write_paused):
            running = cycle.run_asgi(liveness)
            try:
                running.send(None)  # never waits: the transport takes the bytes at once
            except StopIteration:
                return
            raise RuntimeError("the liveness answer waited")  # pragma: no cover
        if app is not self.app:  # uvicorn's plain-text 503 beyond limit_concurrency: ours
            app = too_many_connections
        super()._start_asgi_task(cycle, app)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEADER_BYTES:
            raise HeadTooLarge  # httptools stops; uvicorn's data_received answers 400

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is running: its headers came in time
        self.transport.close()


HEALTH_PATH = "/healthz"
HEALTH_BODY = b'{"status":"ok"}'  # what app/routers/health.py answers


async def liveness(scope: Scope, receive: Receive, send: Send) -> None:
    """``/healthz``'s answer as the app gives it (its JSON and the security headers)."""
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(HEALTH_BODY)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": HEALTH_BODY})


BUSY_BODY = json.dumps({"detail": "the server is serving as many connections as it allows; "
                                  f"try again in {BUSY_RETRY_SECONDS} seconds"}).encode()


async def too_many_connections(scope: Scope, receive: Receive, send: Send) -> None:
    """The 503 beyond the connection limit, in JSON with the security headers like every other
    answer (uvicorn's own is plain text)."""
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BUSY_BODY)).encode()),
        (b"retry-after", str(BUSY_RETRY_SECONDS).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": BUSY_BODY})


def raise_file_limit() -> int:
    """Raises this process's soft limit on open files to its hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
            soft = max(soft, target)
        except (ValueError, OSError):
            pass
    return soft


def max_connections(file_limit: int) -> int:
    """Connections served at once: beyond it a request gets 503 (uvicorn's limit_concurrency).
    Leaves file descriptors for the app's own files and a margin for refused connections."""
    return max(32, min(file_limit // 2, 4096))


def uvicorn_options(file_limit: int) -> dict:
    # loop: asyncio's own, whether or not uvloop happens to be installed ("auto" would take
    # it): uvloop measured no faster here, and it reports a refused accept (out of file
    # descriptors) its own way, which app/logfilter.py does not know.
    return {"http": HeaderTimeoutProtocol, "loop": "asyncio",
            "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
            "limit_concurrency": max_connections(file_limit), "backlog": BACKLOG,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS}
