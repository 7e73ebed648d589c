"""One log line a second, without a traceback, for a flood of refused connections.

When the process runs out of file descriptors, every failed ``accept()`` is logged by asyncio
(and uvicorn) with a full traceback: a flood of connections wrote 74 MB of them in 30 s. The
filter lets one such record through per ``INTERVAL`` seconds, without its traceback, saying
how many it left out.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

INTERVAL = 1.0
LOGGERS = ("asyncio", "uvicorn.error")
MARKERS = ("Too many open files", "out of system resource", "Cannot assign requested address")
ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _is_resource_error(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, OSError) and error.errno in ERRNOS:
        return True
    text = record.getMessage()
    return any(marker in text for marker in MARKERS)


class RateLimitedResourceErrors(logging.Filter):
    def __init__(self, interval: float = INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self.last = -float("inf")
        self.left_out = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_resource_error(record):
            return True
        with self._lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                self.left_out += 1
                return False
            self.last, left_out, self.left_out = now, self.left_out, 0
        error = record.exc_info[1] if record.exc_info else None
        more = f" ({left_out} more like it not logged)" if left_out else ""
        record.msg = f"refusing connections: {error or record.getMessage()}{more}"
        record.args = ()
        record.exc_info = record.exc_text = None
        return True


_filter = RateLimitedResourceErrors()


def install() -> None:
    """Adds the filter to asyncio's and uvicorn's error loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
