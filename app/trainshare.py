"""Identical training runs once: clients asking for the same training run (the same
configuration and seed give the same numbers) follow one shared run.

A ``SharedRun`` keeps every event it has made. A follower first gets the events made so far,
then the new ones as they come; whichever follower is free makes the next step (in the run's
engine process, waited for in a thread, shielded so that a follower leaving mid-step loses
nothing), so the run advances while anyone follows it and never twice. The run ends when it
finishes, hits its time limit, or when its last follower leaves; a finished run is kept (bounded
in bytes, least recently used out) and replayed at once to whoever asks for it again. The
training slot belongs to the run, not to a follower: a hundred students pressing "Train" on the
defaults hold one slot and cost one run's CPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache

import anyio
from fastapi.sse import ServerSentEvent

from gradient_flow_lab.app import sse
from gradient_flow_lab.app.resultcache import LruCache

# Finished runs kept for replay: 32 MiB of event text (a default run is about 1 MiB).
MAX_REPLAY_BYTES = 32 * 2**20

# One step of every live model: the events it made, or None once every model has finished.
Step = Callable[[threading.Event], list[tuple[str, dict]] | None]


@dataclass(frozen=True)
class Replay:
    """The events of a finished run, as sent."""

    events: tuple[ServerSentEvent, ...]

    @property
    def size(self) -> int:
        return sum(len(event.raw_data or "") for event in self.events)


class SharedRun:
    def __init__(self, first: list[tuple[str, dict]], step: Step, max_seconds: float,
                 on_end: Callable[[SharedRun], None],
                 done_extra: Callable[[], dict] | None = None) -> None:
        self.events = [sse.event(name, data) for name, data in first]
        self.finished = False
        self.reason: str | None = None
        self.followers = 0
        self.stop = threading.Event()  # set when the last follower leaves
        self._step = step
        self._max_seconds = max_seconds
        self._on_end = on_end
        self._done_extra = done_extra  # what the ``done`` event adds (the trained models)
        self._stepping = False
        self._news = anyio.Event()
        self._started = time.monotonic()

    async def follow(self) -> AsyncIterator[ServerSentEvent]:
        """Every event of the run, from the first, until its ``done``."""
        sent = 0
        while True:
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if self.finished:
                return
            if self._stepping:  # another follower makes this step: wait for its events
                await self._news.wait()
            else:
                await self._advance()

    async def _advance(self) -> None:
        self._stepping = True
        try:
            if time.monotonic() - self._started > self._max_seconds:
                self._finish("time limit")
                return
            with anyio.CancelScope(shield=True):  # a leaving follower must not lose the step
                made = await anyio.to_thread.run_sync(self._step, self.stop)
            if made is None:
                self._finish("finished")
            else:
                self.events += [sse.event(name, data) for name, data in made]
        finally:
            self._stepping = False
            news, self._news = self._news, anyio.Event()
            news.set()

    def _finish(self, reason: str) -> None:
        extra = self._done_extra() if self._done_extra is not None else {}
        self.events.append(sse.event("done", {
            "reason": reason, "seconds": time.monotonic() - self._started, **extra}))
        self.reason = reason
        self.finished = True
        self._on_end(self)


class TrainingRuns:
    """The runs in progress and the finished ones kept for replay, by key
    (``resultcache.cache_key`` of the configuration, with the time limit)."""

    def __init__(self, max_replay_bytes: int = MAX_REPLAY_BYTES) -> None:
        self.live: dict[str, SharedRun] = {}
        self._starting: anyio.Lock | None = None  # two first clients must not start two runs
        self.replays: LruCache[Replay] = LruCache(max_replay_bytes)
        self.started = 0  # runs started, for tests and benchmarks

    @asynccontextmanager
    async def follow(self, key: str, start: Callable[[], Awaitable[SharedRun]],
                     ) -> AsyncIterator[Callable[[], AsyncIterator[ServerSentEvent]]]:
        """Yields a function giving the run's events: a replay, the live run, or a new one made
        by ``await start()`` (which takes the training slot, or raises 503). Leaving stops the
        run if nobody else follows it."""
        replay = self.replays.get(key)
        if replay is not None:
            yield lambda: _replay(replay.events)
            return
        run = self.live.get(key)
        if run is None:
            if self._starting is None:
                self._starting = anyio.Lock()
            async with self._starting:
                run = self.live.get(key)  # started by another client while this one waited
                if run is None:
                    run = await start()
                    self.live[key] = run
                    self.started += 1
        run.followers += 1
        try:
            yield run.follow
        finally:
            run.followers -= 1
            if run.followers == 0 and not run.finished:
                run.stop.set()
                run._finish("stopped")  # nobody follows: the run (and its slot) ends here

    def ended(self, key: str, run: SharedRun) -> None:
        """Called once when ``run`` ends: forget it, and keep it for replay if it finished."""
        if self.live.get(key) is run:
            del self.live[key]
        if run.reason == "finished":
            self.replays.put(key, Replay(tuple(run.events)))


async def _replay(events: tuple[ServerSentEvent, ...]) -> AsyncIterator[ServerSentEvent]:
    for event in events:
        yield event


@lru_cache
def training_runs() -> TrainingRuns:
    """The process's shared training runs."""
    return TrainingRuns()
