"""Connection limits of the server: what ``gradient-flow-lab`` passes to uvicorn.

uvicorn closes a kept-alive connection that stays idle after a response, but never one that
sends nothing, or sends its request line and headers a byte at a time: enough of those hold
every file descriptor. ``HeaderTimeoutProtocol`` gives every connection ``HEADER_TIMEOUT``
seconds, from when it opens or from its last response, to finish a request's headers, and
closes it otherwise. A request whose headers arrived runs as long as it needs.

It also caps each connection's kernel send buffer (``SEND_BUFFER_BYTES``; Linux lets it grow to
4 MB by itself). A client that stops reading then fills it within seconds, and app/edge.py's
send deadline ends its response; with 4 MB a training stream took over a minute to fill it,
holding its slot all that time, and a thousand such clients could pin 4 GB of kernel memory.
"""

from __future__ import annotations

import asyncio
import resource
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds to send a request's headers
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle kept-alive connection stays open (uvicorn's default)
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (h11's default is 16 KB too)
GRACEFUL_SHUTDOWN_SECONDS = 5  # after SIGTERM, then open requests are cancelled
BACKLOG = 1024  # connections the kernel queues before the server accepts them
SEND_BUFFER_BYTES = 128 * 1024  # the kernel doubles it: 256 KB of unread data per connection


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for headers and a bounded send buffer."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

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
    return {"http": HeaderTimeoutProtocol, "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
            "limit_concurrency": max_connections(file_limit), "backlog": BACKLOG,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS}
