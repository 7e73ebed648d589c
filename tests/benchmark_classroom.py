"""A class of a hundred on loopback: the scenarios of issue 14, bounded in count and time.

    python tests/benchmark_classroom.py                       # every scenario, 60 s each
    python tests/benchmark_classroom.py --duration 15 --scenarios preset,random,train,drag,nginx

Scenarios (each starts its own server; the clients run in this process, on the same 2 cores):
- preset: 100 clients open the same preset (the page's stream), p50/p99;
- random: 50 clients send distinct random configurations within the page limits (nothing is
  cacheable): requests per second, p50, p99, and the server's CPU time per request;
- train:  50 clients press "Train" on the defaults within 10 s and follow it for the duration:
  the server's CPU seconds against one client's run over the same time;
- drag:   a 20-move slider drag (a stream per move, 60 ms apart, each aborting the previous),
  without and with the page id header: the server's CPU seconds until it is idle;
- nginx:  app/deploy/nginx.conf before two app processes: requests per second for the same
  preset (GET) and for random configurations.
/healthz p50/p99 is polled every 50 ms during each (by a process of its own), and the server's
memory (its process tree's PSS) at start and end.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import UVICORN_COMMAND, cpu_seconds, free_port, running_server, wait_idle  # noqa: E402
from tests.load_test import percentile, rss_mb, warm_server  # noqa: E402

PRESET = {"view": "explore", "cell": "lstm", "seq_len": 200, "hidden_size": 64,
          "forget_bias": 1.0}
MAX_REQUESTS = 1_000_000  # a bound on count that a 60 s run at these rates never reaches
DRAG = {"view": "explore", "cell": "lstm", "seq_len": 400, "hidden_size": 128,
        "num_layers": 2, "batch_size": 2}


class Raw:
    """A minimal HTTP/1.1 client (a connection per request, read to the end): the clients share
    two cores with the server, and httpx's own CPU per request would be what is measured."""

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict | None = None) -> tuple[int, dict, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if body:
                lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            data = await reader.read()  # to the end: the server closes after the response
        finally:
            writer.close()
        head, _, content = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        return int(status_line.split()[1]), {k.lower(): v for k, v in found.items()}, content


def query(params: dict) -> str:
    return urlencode(params)


def random_config(rng: random.Random) -> dict:
    """A configuration a page could send, different every time (the seed alone makes sure)."""
    return {"view": rng.choice(["explore", "bptt", "cells", "compare"]),
            "cell": rng.choice(["rnn", "lstm", "gru"]), "seq_len": rng.randint(10, 200),
            "hidden_size": rng.choice([16, 32, 64]), "num_layers": rng.randint(1, 2),
            "weight_scale": round(rng.uniform(0.5, 2.0), 2), "seed": rng.randint(0, 2**31 - 1)}


class HealthPoller:
    """/healthz asked every 50 ms by a process of its own (tests/benchmark_hostile.py --poll):
    in this process the load's own event loop, busy with a hundred clients, would be what is
    measured. ``stop()`` returns the latencies (s)."""

    def __init__(self, url: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="gfl-poll-")
        self.stop_file = os.path.join(self.folder, "stop")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("benchmark_hostile.py")), "--poll",
             url, self.stop_file], stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[float]:
        Path(self.stop_file).touch()
        output = self.process.communicate(timeout=60)[0]
        shutil.rmtree(self.folder, ignore_errors=True)
        return [float(line) for line in output.split()]


async def load(url, clients, request, duration):
    """``clients`` loops of ``request(http, rng)`` for ``duration`` s; returns (latencies,
    errors, /healthz latencies)."""
    latencies, errors, count = [], [], [0]
    deadline = time.monotonic() + duration
    http = Raw(url)
    poller = HealthPoller(url)

    async def client(index):
        rng = random.Random(index)
        while time.monotonic() < deadline and count[0] < MAX_REQUESTS:
            count[0] += 1
            started = time.perf_counter()
            try:
                ok = await asyncio.wait_for(request(http, rng), 60)
            except (OSError, TimeoutError) as error:
                ok, _ = False, errors.append(type(error).__name__)
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append("status")

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, errors, poller.stop()


async def open_preset(http, rng):
    status, _, body = await http.request("GET", "/api/simulate/stream?" + query(PRESET))
    return status == 200 and b"event: result" in body


async def get_preset(http, rng):
    status, headers, body = await http.request("GET", "/api/simulate?" + query(PRESET))
    return status == 200 and body.endswith(b"}")


async def post_random(http, rng):
    config = random_config(rng)
    view = config.pop("view")
    status, _, body = await http.request("POST", f"/api/simulate?view={view}",
                                         json.dumps(config).encode())
    return status == 200 and body.endswith(b"}")


async def get_random(http, rng):
    status, _, body = await http.request("GET", "/api/simulate?" + query(random_config(rng)))
    return status == 200 and body.endswith(b"}")


def row(name, clients, duration, latencies, errors, health, extra=""):
    p = lambda values, q: f"{1e3 * percentile(values, q):.0f}" if values else "-"  # noqa: E731
    print(f"| {name} | {clients} | {len(latencies)} | {len(latencies) / duration:.1f} | "
          f"{p(latencies, 0.5)} | {p(latencies, 0.99)} | {len(errors)} | "
          f"{p(health, 0.5)} / {p(health, 0.99)} | {extra} |", flush=True)


def scenario(name, clients, request, duration):
    with warm_server(1) as server:
        pid = server.process.pid
        memory, cpu = rss_mb(pid), cpu_seconds(pid)
        latencies, errors, health = asyncio.run(load(server.url, clients, request, duration))
        used = cpu_seconds(pid) - cpu
        extra = (f"CPU {1e3 * used / max(1, len(latencies)):.1f} ms/request; "
                 f"{memory:.0f} → {rss_mb(pid):.0f} MB")
    row(name, clients, duration, latencies, errors, health, extra)


async def follow_training(url, clients, spread, duration, health=None):
    """``clients`` follow the default training run, starting within ``spread`` s, each for
    ``duration`` s; returns how many got a step event, and the errors. /healthz latencies
    meanwhile go to ``health`` if given."""
    got, errors = [], []
    poller = HealthPoller(url) if health is not None else None
    limits = httpx.Limits(max_connections=clients + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def client(index):
            await asyncio.sleep(spread * index / max(1, clients))
            deadline = time.monotonic() + duration
            try:
                async with http.stream("GET", "/api/train/stream") as response:
                    if response.status_code != 200:
                        errors.append(response.status_code)
                        return
                    async for line in response.aiter_lines():
                        if line == "event: step" and index not in got:
                            got.append(index)
                        if time.monotonic() > deadline:
                            return
            except httpx.HTTPError as error:
                errors.append(type(error).__name__)

        await asyncio.gather(*(client(i) for i in range(clients)))
    if poller is not None:
        health += poller.stop()
    return len(got), errors


def train_scenario(duration):
    costs = {}
    for clients, spread in ((1, 0), (50, 10)):
        with warm_server(1) as server:
            pid = server.process.pid
            cpu = cpu_seconds(pid)
            # the run lasts duration + 10 s in both cases: the last of the 50 starts at 10 s
            health: list[float] = []
            got, errors = asyncio.run(follow_training(server.url, clients, spread,
                                                      duration + 10 - spread, health))
            wait_idle(pid, 30)
            costs[clients] = cpu_seconds(pid) - cpu
        healthz = (f"{1e3 * percentile(health, 0.5):.0f} / {1e3 * percentile(health, 0.99):.0f}"
                   if health else "-")
        print(f"| train: {clients} clients within {spread} s, run followed {duration + 10:g} s | "
              f"{clients} | {got} followed | - | - | - | {len(errors)} | {healthz} | "
              f"server CPU {costs[clients]:.1f} s |", flush=True)
    print(f"| train: CPU of 50 clients / one client's run | | | | | | | | "
          f"{costs[50] / costs[1]:.2f} |", flush=True)


async def drag(url, page, abort):
    """20 throttled moves, 60 ms apart; each move's stream aborts the previous one (``abort``),
    or leaves it open, as when the server never learns that the browser dropped it."""
    headers = {"X-GFL-Page": page} if page else {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def stream(seq_len):
            async with http.stream("GET", "/api/simulate/stream", headers=headers,
                                   params={**DRAG, "seq_len": seq_len}) as response:
                async for _ in response.aiter_bytes():
                    pass

        previous, streams = None, []
        for move in range(20):
            if previous is not None and abort:
                previous.cancel()
            streams.append(asyncio.create_task(stream(380 + move)))
            previous = streams[-1]
            await asyncio.sleep(0.06)
        await asyncio.gather(*streams, return_exceptions=True)


def drag_scenario():
    for label, page, abort in (
            ("aborting each stream, without page id (before)", None, True),
            ("aborting each stream, with page id", "drag-page-0001", True),
            ("streams left open, without page id (before)", None, False),
            ("streams left open, with page id", "drag-page-0002", False)):
        with warm_server(1) as server:
            pid = server.process.pid
            cpu, started = cpu_seconds(pid), time.monotonic()
            asyncio.run(drag(server.url, page, abort))
            wait_idle(pid, 60)
            print(f"| drag, 20 moves, {label} | 1 | 20 | - | - | - | 0 | - | server CPU "
                  f"{cpu_seconds(pid) - cpu:.2f} s, idle after "
                  f"{time.monotonic() - started:.1f} s |", flush=True)


def nginx_scenario(duration):
    from tests.test_deploy_nginx import NGINX, nginx_conf

    folder = Path(tempfile.mkdtemp(prefix="gfl-bench-nginx-"))
    folder.chmod(0o755)
    with running_server(UVICORN_COMMAND) as one, running_server(UVICORN_COMMAND) as two:
        port = free_port()
        upstreams = [one.url.removeprefix("http://"), two.url.removeprefix("http://")]
        (folder / "nginx.conf").write_text(nginx_conf(port, upstreams, folder))
        nginx = subprocess.Popen([NGINX, "-p", str(folder), "-e", "stderr", "-c",
                                  str(folder / "nginx.conf"), "-g", "daemon off;"],
                                 stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            url = f"http://127.0.0.1:{port}"
            for name, request in (("nginx + 2 apps: same preset (GET)", get_preset),
                                  ("nginx + 2 apps: random configurations (GET)", get_random)):
                latencies, errors, health = asyncio.run(load(url, 50, request, duration))
                row(name, 50, duration, latencies, errors, health)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
            shutil.rmtree(folder, ignore_errors=True)


def mixed_scenario(duration):
    """The mixed load for ``duration`` s (10 minutes in the issue): 10 clients open the same
    preset, 10 GET it, 10 send random configurations, 5 follow the default training run (each
    for 20 s, then again). The server's memory every minute, with MALLOC_ARENA_MAX=2 as the
    recipe sets it."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    with running_server([*UVICORN_COMMAND], env=env) as server:
        pid = server.process.pid
        memory = [rss_mb(pid)]

        async def sample():
            for _ in range(int(duration // 60)):
                await asyncio.sleep(60)
                memory.append(rss_mb(pid))

        async def trainers():
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline - 20:
                await follow_training(server.url, 5, 1, 20)

        async def everything():
            sampler = asyncio.create_task(sample())
            training = asyncio.create_task(trainers())
            results = await asyncio.gather(
                load(server.url, 10, open_preset, duration),
                load(server.url, 10, get_preset, duration),
                load(server.url, 10, post_random, duration))
            await training
            sampler.cancel()
            return results

        results = asyncio.run(everything())
        memory.append(rss_mb(pid))
    for name, (latencies, errors, health) in zip(
            ("mixed: open the preset", "mixed: GET the preset", "mixed: random POST"),
            results, strict=True):
        row(name, 10, duration, latencies, errors, health)
    print(f"| mixed: server memory each minute, MB | | | | | | | | "
          f"{' → '.join(f'{m:.0f}' for m in memory)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--scenarios", default="preset,random,train,drag,nginx")
    args = parser.parse_args()
    print(f"{args.duration:g} s per scenario, loopback, clients in the same 2-core machine")
    print("| scenario | clients | requests | req/s | p50 ms | p99 ms | errors | "
          "/healthz p50 / p99 ms | notes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.scenarios.split(","):
        if name == "preset":
            scenario("100 clients open the same preset (stream)", 100, open_preset,
                     args.duration)
            scenario("100 clients GET the same preset (JSON)", 100, get_preset, args.duration)
        elif name == "random":
            scenario("50 clients, random configurations (POST)", 50, post_random, args.duration)
        elif name == "train":
            train_scenario(args.duration)
        elif name == "drag":
            drag_scenario()
        elif name == "nginx":
            nginx_scenario(args.duration)
        elif name == "mixed":
            mixed_scenario(args.duration)


if __name__ == "__main__":
    main()
