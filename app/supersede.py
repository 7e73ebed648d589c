"""Superseded work stops: each page sends an id with its stream requests (the ``X-GFL-Page``
header, random per page load, from static/js/api.js); a newer stream from the same page sets the
older one's ``stop`` event, and the older run stops at its next progress report
(``progress.Stopped``) instead of computing a result that page will never show.

A slider drag thus costs about one run at a time, even when the server learns late that the
browser dropped the older request (behind a proxy, or while it waits for the heavy lane).

An older run is kept when the newer stream asks for the same result (it will follow that run)
or when other streams wait for it (another student's page asked for the same result): stopping
it would only make them start again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PAGE_HEADER = "x-gfl-page"
_PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class LatestPerPage:
    """The stop event of each page's latest stream. An entry lives as long as its stream, so the
    table is bounded by the open streams."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[threading.Event, str]] = {}
        self._lock = threading.Lock()
        self.superseded = 0  # streams stopped by a newer one, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._latest)

    @contextmanager
    def latest(self, page: str | None, stop: threading.Event, key: str = "",
               followed: Callable[[str], bool] = lambda key: False) -> Iterator[None]:
        """Makes ``stop`` (the stream computing ``key``) the latest of ``page`` while the block
        runs, and stops the previous one unless it computes the same key or others follow it
        (``followed(key)``). A missing or malformed page id supersedes nothing."""
        if page is None or not _PAGE_ID.fullmatch(page):
            yield
            return
        with self._lock:
            older = self._latest.get(page)
            self._latest[page] = (stop, key)
            if older is not None:
                older_stop, older_key = older
                if not older_stop.is_set() and older_key != key and not followed(older_key):
                    older_stop.set()
                    self.superseded += 1
        try:
            yield
        finally:
            with self._lock:
                if self._latest.get(page, (None, ""))[0] is stop:
                    del self._latest[page]


pages = LatestPerPage()
