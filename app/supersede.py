"""Superseded work stops: each page sends an id with its stream requests (the ``X-GFL-Page``
header, random per page load, from static/js/api.js); a newer stream from the same page sets the
older one's ``stop`` event, and the older run stops at its next progress report
(``progress.Stopped``) instead of computing a result that page will never show.

A slider drag thus costs about one run at a time, even when the server learns late that the
browser dropped the older request (behind a proxy, or while it waits for the heavy lane).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PAGE_HEADER = "x-gfl-page"
_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class LatestPerPage:
    """The stop event of each page's latest stream. An entry lives as long as its stream, so the
    table is bounded by the open streams."""

    def __init__(self) -> None:
        self._latest: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.superseded = 0  # streams stopped by a newer one, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._latest)

    @contextmanager
    def latest(self, page: str | None, stop: threading.Event) -> Iterator[None]:
        """Makes ``stop`` the latest of ``page`` (stopping the previous one) while the block
        runs. A missing or malformed page id supersedes nothing."""
        if page is None or not _PAGE_ID.fullmatch(page):
            yield
            return
        with self._lock:
            older = self._latest.get(page)
            self._latest[page] = stop
            if older is not None and not older.is_set():
                older.set()
                self.superseded += 1
        try:
            yield
        finally:
            with self._lock:
                if self._latest.get(page) is stop:
                    del self._latest[page]


pages = LatestPerPage()
