"""The simulation stream's plumbing: BLAS threads, the heavy lane, and a client that leaves."""

from __future__ import annotations

import threading
import time

import anyio
import httpx
from threadpoolctl import threadpool_info

from gradient_flow_lab.app import jobs, progress
from gradient_flow_lab.app.routers import api
from tests.strict_json import sse_events

# Above a tenth of the work budget: these take the heavy lane.
HEAVY = {"view": "explore", "seq_len": 1000, "hidden_size": 160, "num_layers": 1}


def test_blas_runs_one_thread_while_a_simulation_runs(client, monkeypatch, engine_in_threads):
    seen = []
    real_build_view = jobs.build_view

    def build_view(config, view):
        seen.append([info["num_threads"] for info in threadpool_info()
                     if info["user_api"] == "blas"])
        return real_build_view(config, view)

    monkeypatch.setattr(jobs, "build_view", build_view)
    assert client.get("/api/simulate/stream", params={"seq_len": 20}).status_code == 200
    # another configuration: the same one would be answered from the result cache
    assert client.post("/api/simulate", json={"seq_len": 21}).status_code == 200
    assert len(seen) == 2 and all(seen), "no BLAS library found"
    assert seen == [[1] * len(seen[0])] * 2, f"BLAS threads during a run: {seen}"


def test_a_large_network_waits_its_turn_in_the_event_loop_and_says_so(client):
    holder = object()  # another large network, running
    client.portal.call(api.heavy_lane.acquire_on_behalf_of_nowait, holder)
    answer = {}
    request = threading.Thread(target=lambda: answer.update(
        response=client.get("/api/simulate/stream", params=HEAVY)))
    request.start()
    try:
        time.sleep(0.6)
        assert request.is_alive(), "the large network did not wait for the lane"
        # waiting, it holds no worker thread: light requests still get every one
        pool = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        assert pool.borrowed_tokens == 0
        light = client.post("/api/simulate", json={"seq_len": 20})
        assert light.status_code == 200, "a light request waited behind the heavy lane"
    finally:
        client.portal.call(api.heavy_lane.release_on_behalf_of, holder)
        request.join(timeout=60)
    events = sse_events(answer["response"].text)
    stages = [data["stage"] for name, data in events if name == "progress"]
    assert stages[:2] == ["starting", api.WAITING], stages
    assert events[-1][0] == "result"


def test_a_client_that_leaves_stops_the_work_at_its_next_report(live_server, monkeypatch,
                                                                engine_in_threads):
    reports = []
    real_build_view = jobs.build_view

    def slow_view(config, view):  # 100 stages of 50 ms: 5 s if nobody stops it
        for step in range(100):
            progress.report(f"step {step}", step / 100)
            reports.append(step)
            time.sleep(0.05)
        return real_build_view(config, view)

    monkeypatch.setattr(jobs, "build_view", slow_view)
    url = f"{live_server.url}/api/simulate/stream"
    with httpx.Client(timeout=30) as http, http.stream("GET", url, params=HEAVY) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:") and '"step ' in line:
                break  # a stage past 0.25 s: the work is well under way
    deadline = time.monotonic() + 2
    while api.heavy_lane.borrowed_tokens and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.heavy_lane.borrowed_tokens == 0, "the heavy lane stayed taken after the client left"
    stopped_at = len(reports)
    time.sleep(0.3)
    assert len(reports) == stopped_at < 30, f"the work went on: {len(reports)} of 100 stages"


def test_a_report_after_stop_raises_stopped():
    stop = threading.Event()
    heard = []
    with progress.reporting(lambda kind, value: heard.append(value), stop):
        progress.report("first", 0.1)
        stop.set()
        try:
            progress.report("second", 0.2)
        except progress.Stopped:
            heard.append("stopped")
    assert heard == [("first", 0.1), "stopped"]
