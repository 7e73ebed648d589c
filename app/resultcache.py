"""Finished simulation results, kept in memory: a result is a pure function of (configuration,
view, package version), so a repeated request is answered from here without any NumPy work.

What is kept is exactly what goes on the wire: the strict-JSON result document and the data of
the stream's ``backward`` events, as text, and the stream's body once one was asked for. The
cache is bounded in bytes of all three and evicts the least recently used entry first.

    cache = result_cache()
    entry = cache.get(key)            # None, or a CachedResult (now the most recently used)
    cache.put(key, CachedResult(document, backward))
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

# 64 MiB of result text: about 1,500 default explore results (fewer once streamed: a streamed
# entry also keeps its stream body).
MAX_BYTES = 64 * 2**20
# How long any HTTP cache (browser, nginx) may keep a GET result. The URL names every input and
# the version is in the ETag, so a result never changes under a URL within one release.
MAX_AGE = 86400


@lru_cache
def version() -> str:
    """The installed package's version: part of every key, so an upgrade never serves old
    numbers."""
    try:
        return importlib.metadata.version("gradient-flow-lab")
    except importlib.metadata.PackageNotFoundError:  # running from a bare source tree
        return "0+unknown"


def cache_key(model: BaseModel) -> str:
    """Canonical text of a validated model (every field, defaults included, keys sorted) and the
    package version: two requests that mean the same thing have the same key."""
    fields = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return f"{version()} {type(model).__name__} {fields}"


def etag_for(key: str) -> str:
    """A strong ETag for the result under ``key``: the result is deterministic, so the key (which
    holds the version) names its bytes."""
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class CachedResult:
    """A finished result as sent: the ``result`` document and the ``backward`` events' data;
    once a stream has been asked for it, also that stream's whole body (``stream``), which a
    later stream of the same result sends as it is (the cache then holds the entry again, with
    its new size)."""

    document: str
    backward: tuple[str, ...] = ()
    stream: bytes | None = None

    @property
    def size(self) -> int:
        return (len(self.document) + sum(len(text) for text in self.backward)
                + len(self.stream or b""))


class Sized(Protocol):
    @property
    def size(self) -> int: ...


Entry = TypeVar("Entry", bound=Sized)


class LruCache(Generic[Entry]):
    """A dict bounded by the total ``size`` of its entries; the least recently used go first.
    Thread-safe (one lock; every operation is O(1) apart from evictions)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: str, entry: Entry) -> None:
        if entry.size > self.max_bytes:  # larger than the whole cache: never kept
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[key] = entry
            self.bytes += entry.size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = self.hits = self.misses = 0


@lru_cache
def result_cache() -> LruCache[CachedResult]:
    """The process's cache of simulation results."""
    return LruCache(MAX_BYTES)
