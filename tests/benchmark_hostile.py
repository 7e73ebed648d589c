"""Hostile-client scenarios on loopback, against a real `gradient-flow-lab` process each:

    python tests/benchmark_hostile.py                       # all three
    python tests/benchmark_hostile.py starvation --settle 5

- starvation: 80 clients POST a /bptt request at the whole work budget at once, while /healthz
  is asked every 50 ms: prints its p50/p99 and how many heavy requests ran or got 503.
- memory: 40 clients POST the memory-heavy request of issue 15 (rnn, T=1000, H=13, L=4, B=32)
  at once: prints the server's RSS at start, its peak, and ``--settle`` seconds after.
- abandonment: 80 heavy POSTs sent, then reset (RST) within 0.8 s: prints the CPU the server
  spent on them after the last reset, and what one such request costs when its client waits.

Bounded in count and time, loopback only. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import cpu_seconds, memory_mb, running_server, wait_idle  # noqa: E402

# bptt runs the network twice: 2 x 1000 x 2 x 250^2 = 250,000,000, the whole work budget
HEAVY = {"cell": "rnn", "seq_len": 1000, "hidden_size": 250, "num_layers": 2, "batch_size": 1}
HEAVY_VIEW = "bptt"
MEMORY_HEAVY = {"cell": "rnn", "seq_len": 1000, "hidden_size": 13, "num_layers": 4,
                "batch_size": 32}


def rss_mb(pid: int) -> float:
    """The server's memory with its engine processes (tests.helpers.memory_mb), in MB."""
    return memory_mb(pid)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def post_many(url: str, body: dict, clients: int, timeout: float = 120) -> list[int]:
    """``clients`` threads POST ``body`` at once (each with a seed of its own), over one shared
    httpx client: a client each would spend more CPU building TLS contexts than the server
    spends on the requests, on the same two cores."""
    codes: list[int] = []
    lock = threading.Lock()
    seeds = iter(range(10**6))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    with httpx.Client(timeout=timeout, limits=limits) as http:
        def one() -> None:
            # a seed of its own: identical requests would share one computation
            with lock:
                seed = next(seeds)
            try:
                code = http.post(url, json={**body, "seed": seed}).status_code
            except httpx.HTTPError:
                code = 0
            with lock:
                codes.append(code)

        threads = [threading.Thread(target=one) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 10)
    return codes


def poll_healthz(url: str, stop_file: str) -> None:
    """Asks /healthz every 50 ms until ``stop_file`` exists; prints one latency (s) a line.
    Runs in a process of its own, so the heavy clients' threads do not slow the measurement."""
    with httpx.Client(timeout=30) as http:
        while not Path(stop_file).exists():
            started = time.perf_counter()
            http.get(f"{url}/healthz")
            print(time.perf_counter() - started, flush=True)
            time.sleep(0.05)


def starvation(clients: int = 80) -> dict:
    with running_server(stop_timeout=30) as server, \
            tempfile.TemporaryDirectory() as scratch:
        url = f"{server.url}/api/simulate?view={HEAVY_VIEW}"
        httpx.post(url, json={"seq_len": 20}, timeout=30)  # imports and caches
        stop_file = str(Path(scratch) / "stop")
        poller = subprocess.Popen([sys.executable, __file__, "--poll", server.url, stop_file],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        codes = post_many(url, HEAVY, clients)
        Path(stop_file).touch()
        latencies = [float(line) for line in poller.communicate(timeout=60)[0].split()]
        return {"healthz_p50_ms": round(1000 * statistics.median(latencies), 1),
                "healthz_p99_ms": round(1000 * percentile(latencies, 99), 1),
                "healthz_max_ms": round(1000 * max(latencies), 1),
                "healthz_samples": len(latencies),
                "heavy_200": codes.count(200), "heavy_503": codes.count(503),
                "heavy_other": len(codes) - codes.count(200) - codes.count(503)}


def memory(clients: int = 40, settle: float = 30) -> dict:
    with running_server(stop_timeout=30) as server:
        pid = server.process.pid
        url = f"{server.url}/api/simulate"
        httpx.post(url, json={"seq_len": 20}, timeout=30)
        start = rss_mb(pid)
        peak = [start]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.monotonic()
        codes = post_many(url, MEMORY_HEAVY, clients)
        seconds = time.monotonic() - began
        done.set()
        sampler.join()
        after_load = rss_mb(pid)
        time.sleep(settle)
        return {"rss_start_mb": round(start), "rss_peak_mb": round(peak[0]),
                "rss_after_load_mb": round(after_load),
                f"rss_{settle:g}s_after_mb": round(rss_mb(pid)),
                "ok": codes.count(200), "requests": len(codes), "seconds": round(seconds, 1)}


def _send_and_reset(port: int, body: bytes, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    return sock


def abandonment(clients: int = 80) -> dict:
    with running_server(stop_timeout=30) as server:
        pid = server.process.pid
        port = int(server.url.rsplit(":", 1)[1])
        path = f"/api/simulate?view={HEAVY_VIEW}"
        url = server.url + path
        httpx.post(url, json={"seq_len": 20}, timeout=30)
        wait_idle(pid, timeout=30)
        before = cpu_seconds(pid)
        assert httpx.post(url, json=HEAVY, timeout=120).status_code == 200
        one_request = cpu_seconds(pid) - before
        wait_idle(pid, timeout=30)
        body = json.dumps(HEAVY).encode()
        before = cpu_seconds(pid)
        began = time.monotonic()
        sockets = [_send_and_reset(port, body, path) for _ in range(clients)]
        time.sleep(max(0.0, 0.8 - (time.monotonic() - began)))
        for sock in sockets:
            sock.close()
        wait_idle(pid, timeout=300, quiet=1.0)
        spent = cpu_seconds(pid) - before
        return {"cpu_abandoned_s": round(spent, 2),
                "cpu_one_heavy_request_s": round(one_request, 2),
                "cpu_if_all_ran_s": round(clients * one_request, 1),
                "seconds_until_idle": round(time.monotonic() - began, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=["starvation", "memory", "abandonment"])
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to wait before the settled RSS (default 30)")
    parser.add_argument("--poll", nargs=2, metavar=("URL", "STOP_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poll:
        poll_healthz(*args.poll)
        return
    for name in args.scenarios:
        result = memory(settle=args.settle) if name == "memory" else globals()[name]()
        print(json.dumps({"scenario": name, **result}), flush=True)


if __name__ == "__main__":
    main()
