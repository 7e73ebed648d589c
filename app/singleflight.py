"""Identical work runs once: concurrent callers asking for the same key share one computation.

    result = await flights.run(key, lookup, compute)

``lookup()`` answers from a cache (None when absent); ``compute()`` is awaited by one caller
only, the leader, while the others wait for it to finish and then look up again. If the leader
fails or is cancelled (its client left, or a newer request from its page superseded it), the
waiting callers wake up and one of them becomes the new leader: nobody is left without an answer.
A leader whose client left keeps computing while others wait for its result (``UnlessFollowed``
is the stop flag its work watches), so their wait is not thrown away.

Flights live in the event loop (an ``anyio.Event`` each); the app serves from one loop per
process.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

Result = TypeVar("Result")


class SingleFlight:
    def __init__(self) -> None:
        self._flights: dict[str, anyio.Event] = {}
        self._waiting: dict[str, int] = {}
        self.computations = 0  # leaders started, for tests and benchmarks

    def in_flight(self, key: str) -> bool:
        return key in self._flights

    def followed(self, key: str) -> bool:
        """Whether anyone waits for ``key``'s computation (stopping it would waste their wait)."""
        return self._waiting.get(key, 0) > 0

    async def run(self, key: str, lookup: Callable[[], Result | None],
                  compute: Callable[[], Awaitable[Result]],
                  on_wait: Callable[[], None] | None = None) -> Result:
        """The cached result, or the one computed by whoever leads ``key``'s flight.
        ``on_wait`` is called once if this caller has to wait for another's computation."""
        waited = False
        while True:
            found = lookup()
            if found is not None:
                return found
            flight = self._flights.get(key)
            if flight is None:
                break
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            self._waiting[key] = self._waiting.get(key, 0) + 1
            try:
                await flight.wait()
            finally:
                self._waiting[key] -= 1
                if not self._waiting[key]:
                    del self._waiting[key]
        flight = self._flights[key] = anyio.Event()
        self.computations += 1
        try:
            return await compute()
        finally:
            del self._flights[key]
            flight.set()


class UnlessFollowed:
    """The stop flag of a flight's work: set once ``flag`` is (the leader's client left) and
    nobody else waits for the result, or whenever ``always()`` is true (the server is stopping).
    Read from the worker's thread at each report."""

    def __init__(self, flag: threading.Event, flights: SingleFlight, key: str,
                 always: Callable[[], bool] = lambda: False) -> None:
        self._flag, self._flights, self._key, self._always = flag, flights, key, always

    def is_set(self) -> bool:
        return (self._flag.is_set() and not self._flights.followed(self._key)) or self._always()
