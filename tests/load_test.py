"""Load test on loopback: many concurrent clients against a real server process.

    python tests/load_test.py                    # every scenario, 60 s each
    python tests/load_test.py --duration 20 --scenarios post50,stream50

Bounded in count and time, loopback only. Each scenario starts its own server
(``gradient-flow-lab --workers N``) so memory is measured from a fresh start. Prints requests
per second, p50/p99 latency, errors, and the server's resident memory (all its processes) at the
start and the end. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import CONSOLE_COMMAND, Server, memory_mb, running_server  # noqa: E402

DEFAULT = {}  # the configuration model's defaults
LARGEST = {"seq_len": 1000, "hidden_size": 250, "num_layers": 1, "batch_size": 1,
           "cell": "lstm"}  # about the whole work budget
SCENARIOS = {
    # name: (workers, [(clients, kind, config)])
    "post50": (1, [(50, "post", DEFAULT)]),
    "post100": (1, [(100, "post", DEFAULT)]),
    "stream50": (1, [(50, "stream", DEFAULT)]),
    "stream100": (1, [(100, "stream", DEFAULT)]),
    "post50_workers2": (2, [(50, "post", DEFAULT)]),
    "heavy10_light50": (1, [(10, "post", LARGEST), (50, "post", DEFAULT)]),
}
MAX_REQUESTS = 200_000  # a hard stop whatever the duration


def rss_mb(pid: int) -> float:
    """Memory of the server and every process below it (uvicorn workers, engine processes), in
    MB (proportional set sizes: tests.helpers.memory_mb)."""
    return memory_mb(pid)


async def client_loop(http, url, kind, config, deadline, latencies, errors, counter):
    while time.monotonic() < deadline and counter[0] < MAX_REQUESTS:
        counter[0] += 1
        started = time.perf_counter()
        try:
            if kind == "post":
                response = await http.post(f"{url}/api/simulate", json=config)
                ok = response.status_code == 200 and response.content.endswith(b"}")
            else:
                async with http.stream("GET", f"{url}/api/simulate/stream",
                                       params=config) as response:
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                ok = response.status_code == 200 and b"event: result" in body
        except httpx.HTTPError as error:
            ok = False
            errors.append(type(error).__name__)
        if ok:
            latencies.append(time.perf_counter() - started)
        elif not errors or errors[-1] != "status":
            errors.append("status")


async def run_groups(url, groups, duration):
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=sum(c for c, _, _ in groups) + 10)
    results = []
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        tasks = []
        for clients, kind, config in groups:
            latencies, errors, counter = [], [], [0]
            results.append((clients, kind, config, latencies, errors))
            tasks += [client_loop(http, url, kind, config, deadline, latencies, errors, counter)
                      for _ in range(clients)]
        await asyncio.gather(*tasks)
    return results


@contextmanager
def warm_server(workers: int = 1, log: Path | None = None) -> Iterator[Server]:
    """A `gradient-flow-lab --workers N` process on a free loopback port (tests.helpers.
    running_server), its workers warmed up; its output goes to ``log``."""
    with running_server([*CONSOLE_COMMAND, "--workers", str(workers)], log=log,
                        stop_timeout=30) as server:
        # the first request of a process pays for imports and caches
        for _ in range(4 * workers):
            urllib.request.urlopen(urllib.request.Request(
                server.url + "/api/simulate", data=b"{}",
                headers={"content-type": "application/json"}), timeout=30).read()
        yield server


async def healthz_during_training(duration: float) -> None:
    """/healthz latency while two training streams run (the event loop must stay free)."""
    params = {"steps": 20000, "cells": "rnn,lstm,gru"}
    with warm_server(1) as server:
        url = server.url
        async with httpx.AsyncClient(timeout=60) as http:
            running = [asyncio.Event(), asyncio.Event()]

            async def consume(deadline, started):
                async with aconnect_sse(http, "GET", f"{url}/api/train/stream",
                                        params=params) as source:
                    async for event in source.aiter_sse():
                        if event.event == "step":
                            started.set()
                        if time.monotonic() > deadline:
                            return

            deadline = time.monotonic() + duration
            trainings = [asyncio.create_task(consume(deadline, started)) for started in running]
            # measure once both trainings are computing steps
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in running)), timeout=60)
            latencies = []
            while time.monotonic() < deadline - 1:
                started = time.perf_counter()
                response = await http.get(f"{url}/healthz")
                assert response.status_code == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.2)
            await asyncio.gather(*trainings)
    print(f"| /healthz during two training streams | 1 | {len(latencies)} | - | "
          f"{1e3 * percentile(latencies, 0.5):.1f} | {1e3 * percentile(latencies, 0.99):.1f} "
          f"| 0 | |", flush=True)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--scenarios", default=",".join([*SCENARIOS, "healthz_training"]))
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.duration:g} s per scenario, loopback")
    print("| scenario | clients | requests | req/s | p50 ms | p99 ms | errors | "
          "server MB start → end |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.scenarios.split(","):
        if name == "healthz_training":
            asyncio.run(healthz_during_training(args.duration))
            continue
        workers, groups = SCENARIOS[name]
        with warm_server(workers) as server:
            memory_start = rss_mb(server.process.pid)
            results = asyncio.run(run_groups(server.url, groups, args.duration))
            memory_end = rss_mb(server.process.pid)
        for clients, kind, config, latencies, errors in results:
            label = f"{name} ({kind}, {'largest' if config else 'default'} config)"
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(f"| {label} | {clients} | {len(latencies)} | "
                  f"{len(latencies) / args.duration:.1f} | "
                  f"{1e3 * p50:.0f} | {1e3 * p99:.0f} | {len(errors)} | "
                  f"{memory_start:.0f} → {memory_end:.0f} |" if latencies else
                  f"| {label} | {clients} | 0 | 0 | - | - | {len(errors)} | |", flush=True)


if __name__ == "__main__":
    main()
