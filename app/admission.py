"""Who runs now, who waits, and who is told to come back: the simulation endpoints' admission.

Two bounds, both waited for in the event loop, so a request waiting its turn holds no thread of
the pool and ``/healthz`` and the pages never queue behind it:

- the heavy lane: requests above a tenth of the work budget run one at a time; at most
  ``MAX_QUEUED_HEAVY`` more wait for it, and one more gets 503 with ``Retry-After`` at once;
- the memory in flight: every request holds its estimated peak bytes (``view_memory`` in
  app/schemas.py) while it runs, and waits while the total would pass ``MEMORY_IN_FLIGHT``.

Usage, in the event loop::

    with admitted(query) as turn:   # HTTPException(503) when the heavy queue is full
        async with turn:            # waits for the lane and the bytes
            ...                     # run the work in a thread
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import anyio
from fastapi import HTTPException

from gradient_flow_lab.app.schemas import (
    MEMORY_PER_REQUEST,
    WORK_BUDGET,
    SimulationQuery,
    view_memory,
    view_work,
)

HEAVY_WORK = WORK_BUDGET // 10
MAX_QUEUED_HEAVY = 8  # heavy requests waiting behind the one that runs (about 3 s of work)
RETRY_AFTER_SECONDS = 10
# Estimated peak bytes of all simulations running at once. With the per-request cap this lets
# two of the largest run together and keeps the process under about 1 GB (README, "Limits").
MEMORY_IN_FLIGHT = 2 * MEMORY_PER_REQUEST
# Give freed heap pages back to the system once the memory in flight drops to zero after
# this much was held (glibc keeps freed pages of its arenas otherwise).
TRIM_AFTER_BYTES = 64 * 1024 * 1024


class ByteBudget:
    """A semaphore counted in bytes, first come first served, for one event loop's tasks."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.peak_since_idle = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, amount: int) -> int:
        amount = min(amount, self.total)  # a request alone may always run
        if not self._waiters and self.used + amount <= self.total:
            self._take(amount)
            return amount
        waiter = (amount, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await waiter[1]
        except BaseException:
            if waiter[1].done() and not waiter[1].cancelled():
                self.release(amount)  # granted, then cancelled before it was used
            else:
                self._waiters.remove(waiter)
                self._wake()
            raise
        return amount

    def release(self, amount: int) -> None:
        self.used -= amount
        self._wake()

    def _take(self, amount: int) -> None:
        self.used += amount
        self.peak_since_idle = max(self.peak_since_idle, self.used)

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.total:
            amount, future = self._waiters.popleft()
            if not future.done():
                self._take(amount)
                future.set_result(None)


class HeavyLane:
    """One heavy request at a time, at most ``max_queued`` waiting; the rest refused."""

    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self.admitted = 0  # running or waiting
        self.limiter = anyio.CapacityLimiter(1)

    @property
    def busy(self) -> bool:
        return self.limiter.borrowed_tokens >= self.limiter.total_tokens


heavy_lane = HeavyLane(MAX_QUEUED_HEAVY)
memory_in_flight = ByteBudget(MEMORY_IN_FLIGHT)


def _malloc_trim() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class Turn:
    """An admitted request's place: ``async with`` waits for the lane (if heavy) and the bytes."""

    def __init__(self, query: SimulationQuery) -> None:
        self.heavy = view_work(query, query.view) > HEAVY_WORK
        self.bytes = view_memory(query, query.view)
        self._held = 0

    @property
    def must_wait(self) -> bool:
        return ((self.heavy and heavy_lane.busy)
                or memory_in_flight.used + self.bytes > memory_in_flight.total)

    async def __aenter__(self) -> Turn:
        if self.heavy:
            await heavy_lane.limiter.acquire()
        try:
            self._held = await memory_in_flight.acquire(self.bytes)
        except BaseException:
            if self.heavy:
                heavy_lane.limiter.release()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        memory_in_flight.release(self._held)
        if self.heavy:
            heavy_lane.limiter.release()
        if memory_in_flight.used == 0 and memory_in_flight.peak_since_idle >= TRIM_AFTER_BYTES:
            memory_in_flight.peak_since_idle = 0
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_malloc_trim)


def busy_response() -> HTTPException:
    return HTTPException(
        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        detail=f"{heavy_lane.admitted} large networks are running or waiting; try again in "
               f"{RETRY_AFTER_SECONDS} seconds, or lower seq_len, hidden_size, batch_size or "
               f"num_layers")


@contextmanager
def admitted(query: SimulationQuery) -> Iterator[Turn]:
    """The request's Turn, or HTTPException(503) at once when too many heavy ones wait."""
    turn = Turn(query)
    if turn.heavy:
        if heavy_lane.admitted >= 1 + heavy_lane.max_queued:
            raise busy_response()
        heavy_lane.admitted += 1
    try:
        yield turn
    finally:
        if turn.heavy:
            heavy_lane.admitted -= 1
