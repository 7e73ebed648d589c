"""What the tests, benchmarks and load test share outside a browser: a free loopback port, a
polled wait with a deadline, and a real server process.

    with running_server() as server:  # `python -m gradient_flow_lab.app.cli`
        httpx.get(server.url + "/healthz")
    with running_server(UVICORN_COMMAND, env=...) as server:  # any command taking --host/--port
        ...

Every wait here is bounded: a test may fail, never hang.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CONSOLE_COMMAND = [sys.executable, "-m", "gradient_flow_lab.app.cli"]
UVICORN_COMMAND = [sys.executable, "-m", "uvicorn", "gradient_flow_lab.app.main:app",
                   "--log-level", "warning"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, message: str,
               interval: float = 0.02):
    """Polls ``condition`` until it returns something true and returns that; raises
    TimeoutError(message) once ``timeout`` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} (waited {timeout:g} s)")
        time.sleep(interval)


@dataclass
class Server:
    """A server process started by ``running_server``; its output goes to ``log``."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def running_server(command: Sequence[str] = CONSOLE_COMMAND, *, env: dict | None = None,
                   cwd: str | Path | None = None, log: Path | None = None,
                   startup_timeout: float = 60, stop_timeout: float = 20) -> Iterator[Server]:
    """Starts ``command --host 127.0.0.1 --port <free port>`` and yields a Server once
    /healthz answers 200. On exit: SIGTERM, then SIGKILL after ``stop_timeout`` s.

    The output goes to a file (a full pipe would stall the server), ``log`` or a temporary one
    that is kept, so a failure can show it: a start that fails raises with its last lines."""
    port = free_port()
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="gfl-server-")) / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        try:
            wait_until(lambda: process.poll() is not None or healthy(server.url),
                       startup_timeout, f"{server.url}/healthz did not answer", interval=0.1)
        except TimeoutError as error:
            raise RuntimeError(f"{error}; log {log}:\n{server.log_text()[-3000:]}") from None
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; log {log}:\n"
                               f"{server.log_text()[-3000:]}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=stop_timeout)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the server, its engine fork server and workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and every process below it, the
    ended ones included (the engine's workers do the NumPy work), from /proc."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> float:
    """Memory of a process and every process below it, in MB: the sum of their proportional
    set sizes (a page shared by n processes counts 1/n in each), so pages the engine's workers
    share with their fork server are counted once."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def wait_idle(pid: int, timeout: float, quiet: float = 0.3) -> None:
    """Waits until process ``pid`` has used no CPU for ``quiet`` seconds (its background work
    is over); raises TimeoutError after ``timeout`` seconds."""
    last = [cpu_seconds(pid), time.monotonic()]

    def quiet_long_enough() -> bool:
        used, now = cpu_seconds(pid), time.monotonic()
        if used != last[0]:
            last[:] = [used, now]
        return now - last[1] >= quiet

    wait_until(quiet_long_enough, timeout, f"process {pid} is still busy", interval=0.05)


def run_async(function, *args):
    """``anyio.run(function, *args)`` in a thread of its own, returning its result or raising its
    error. The browser tests' session-wide Playwright (its sync API) keeps an event loop running
    in the main thread, where a second one cannot start."""
    import anyio

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = anyio.run(function, *args)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def small_model_store(folder: Path, max_file_bytes: int) -> Iterator[object]:
    """A model store of its own in ``folder`` (at most 5 models, 20 MB), installed as the app's
    store for the block and removed after it."""
    from gradient_flow_lab.app import modelstore

    store = modelstore.ModelStore(folder, max_file_bytes=max_file_bytes,
                                  max_total_bytes=20_000_000, max_count=5)
    modelstore.set_store(store)
    try:
        yield store
    finally:
        modelstore.set_store(None)
