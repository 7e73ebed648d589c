"""The engine's NumPy work runs in worker processes, outside the server's process.

Why: the server's event loop (every request, ``/healthz`` included) and a NumPy loop in a
thread of the same process take turns holding one interpreter lock. An engine step releases it
for each matrix product and takes it back at once, so the event loop waited up to Python's
switch interval (5 ms) for every socket operation: ``/healthz`` took 60 ms at p99 beside one
heavy run, and cached streams slowed to seconds beside a few computing requests. In processes
of their own, the engine and the event loop only share the cores, which the kernel divides
fairly and at a fine grain.

- ``EngineProcess``: one worker process and its pipe. ``call(fn, *args, tell=, stop=)`` runs
  ``fn(*args)`` there (``fn`` a module-level function, its arguments and result picklable),
  inside ``progress.reporting``: the stages, sweeps and partial results the work reports come
  back through ``tell``, and once the caller's ``stop`` is set the work stops at its next
  report (``progress.Stopped`` in the caller too). An exception raised by ``fn`` is raised in
  the caller; a process that dies (killed for memory, say) raises ``EngineFailed``.
- ``EnginePool``: ``GFL_ENGINE_PROCESSES`` such processes shared by every request; a request
  waits for an idle one in the event loop (never in a thread of the pool). With 0 processes the
  work runs in threads of the server, as it once did (the tests that replace a function of the
  engine in the server's process use that).
- ``dedicated()``: a process of its own for a training run, which keeps its state between
  steps; it is stopped when the run ends.

Processes are forked from a fork server that imported the engine once (``PRELOAD``), so a new
one is ready in milliseconds and shares those pages with its siblings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from multiprocessing.context import ForkServerContext
from typing import Any, TypeVar

import anyio

from gradient_flow_lab.app import progress

T = TypeVar("T")
Tell = Callable[[str, object], None]
# What the fork server imports once, for every worker it forks.
PRELOAD = ["gradient_flow_lab.app.jobs"]
WORKER_NICENESS = 10  # added to the server's niceness (lower CPU priority)
POLL_SECONDS = 0.02  # how often a waiting caller looks at its ``stop`` between messages


class EngineFailed(RuntimeError):
    """The worker process ended while it worked (killed for memory, or a crash)."""


@lru_cache
def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class EngineProcess:
    """A worker process; ``call`` is blocking (call it from a thread, not the event loop)."""

    def __init__(self) -> None:
        context = _context()
        self._conn, child = context.Pipe()
        self._stop = context.Event()
        self.process = context.Process(target=_serve, args=(child, self._stop), daemon=True,
                                       name="gradient-flow-lab engine")
        with _main_file_hidden_if_missing():
            self.process.start()
        child.close()
        self._lock = threading.Lock()  # one call at a time

    def call(self, fn: Callable[..., T], *args: Any, tell: Tell | None = None,
             stop: threading.Event | None = None) -> T:
        """``fn(*args)`` in the worker; its reports go to ``tell`` (raising there sets the
        worker's stop and is raised once the worker has finished). Raises what ``fn`` raised,
        ``progress.Stopped`` once ``stop`` stopped it, or ``EngineFailed``."""
        with self._lock:
            self._stop.clear()
            try:
                self._conn.send((fn, args))
            except (OSError, ValueError) as error:
                raise EngineFailed(self._ended()) from error
            failed_tell: BaseException | None = None
            while True:
                if stop is not None and stop.is_set():
                    self._stop.set()
                if not self._conn.poll(POLL_SECONDS):
                    if not self.process.is_alive() and not self._conn.poll(0):
                        raise EngineFailed(self._ended())
                    continue
                try:
                    message = self._conn.recv()
                except (EOFError, OSError) as error:
                    raise EngineFailed(self._ended()) from error
                kind = message[0]
                if kind == "news":
                    if tell is not None and failed_tell is None:
                        try:
                            tell(message[1], message[2])
                        except BaseException as error:  # noqa: BLE001 - raised below
                            failed_tell = error
                            self._stop.set()
                    continue
                if failed_tell is not None:
                    raise failed_tell
                if kind == "return":
                    return message[1]  # type: ignore[no-any-return]
                if kind == "stopped":
                    raise progress.Stopped
                error, text = message[1], message[2]
                error.add_note(f"raised in the engine process:\n{text}")  # in the log's traceback
                raise error

    def _ended(self) -> str:
        self.process.join(timeout=1)
        code = self.process.exitcode
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                how += " (often: the machine ran out of memory)"
        else:
            how = f"exited with {code}"
        return f"the engine's worker process {how} during the computation"

    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> None:
        """Stops the process (at once: it holds nothing that must be saved)."""
        self._conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


@contextmanager
def _main_file_hidden_if_missing() -> Iterator[None]:
    """A new process imports the parent's ``__main__`` from its file; a main read from standard
    input (``python - < script``) names '<stdin>', which the child cannot open, and it died.
    The workers need nothing from ``__main__``: such a name is hidden while one starts."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None or os.path.exists(path):
        yield
        return
    del main.__file__  # type: ignore[union-attr]
    try:
        yield
    finally:
        main.__file__ = path  # type: ignore[union-attr]


def _serve(conn: multiprocessing.connection.Connection, stop: Any) -> None:
    """The worker's loop: a call at a time, until the server closes the pipe."""
    # Ctrl+C in a terminal reaches the whole process group: the server decides when work ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    # Below the server in the kernel's eyes: when both want a core, the event loop (a request's
    # few milliseconds) goes first, and the long NumPy work takes what is left.
    os.nice(WORKER_NICENESS)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # one BLAS thread: the pool is the parallelism

    def tell(kind: str, value: object) -> None:
        conn.send(("news", kind, value))

    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the server is gone
        try:
            with progress.reporting(tell, stop):
                value = fn(*args)
            reply: tuple = ("return", value)
        except progress.Stopped:
            reply = ("stopped",)
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("raise", _picklable(error), traceback.format_exc())
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
        finally:
            _malloc_trim()  # give the freed arrays' memory back to the system between calls


def _picklable(error: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any exception that cannot cross the pipe
        return RuntimeError(f"{type(error).__name__}: {error}")


@lru_cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _die_with_parent() -> None:
    """On Linux: the worker is killed when its parent (the fork server) ends, so a server that
    exited at once (a second Ctrl+C) leaves no computing orphan behind."""
    libc = _libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent ended before the call
            os._exit(0)


def _malloc_trim() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _inline(fn: Callable[..., T], args: tuple, tell: Tell | None,
            stop: threading.Event | None) -> T:
    with progress.reporting(tell or _ignore, stop):
        return fn(*args)


def _ignore(kind: str, value: object) -> None:
    pass


class EnginePool:
    """``size`` worker processes shared by the requests (0: threads of this process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[EngineProcess] = []
        self._turns: anyio.Semaphore | None = None

    async def run(self, fn: Callable[..., T], *args: Any, tell: Tell | None = None,
                  stop: threading.Event | None = None) -> T:
        """``fn(*args)`` in a worker process once one is free (waited for in the event loop),
        ``tell`` and ``stop`` as for ``EngineProcess.call``. A worker that died is replaced."""
        if self.size == 0:
            return await anyio.to_thread.run_sync(_inline, fn, args, tell, stop)
        if self._turns is None:
            self._turns = anyio.Semaphore(self.size)
        async with self._turns:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = await anyio.to_thread.run_sync(EngineProcess)
            try:
                return await anyio.to_thread.run_sync(
                    lambda: worker.call(fn, *args, tell=tell, stop=stop))
            finally:
                if worker.alive():
                    self._idle.append(worker)
                else:
                    worker.close()

    def start(self) -> None:
        """Starts the processes now (a server's first requests then wait for none)."""
        while len(self._idle) < self.size:
            self._idle.append(EngineProcess())

    def close(self) -> None:
        for worker in self._idle:
            worker.close()
        self._idle.clear()


@lru_cache
def engine_pool() -> EnginePool:
    """The server's pool, ``GFL_ENGINE_PROCESSES`` processes."""
    from gradient_flow_lab.app.settings import get_settings

    return EnginePool(get_settings().engine_processes)


def dedicated() -> EngineProcess | None:
    """A worker process of its own (for a training run), or None when the pool runs its work
    in threads (``GFL_ENGINE_PROCESSES=0``)."""
    return EngineProcess() if engine_pool().size else None
