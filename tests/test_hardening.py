"""Headers, request limits, the training slot limit, and what happens when a client leaves."""

import concurrent.futures
import threading
import time

import httpx
import pytest

from gradient_flow_lab.app.routers import train as train_router
from gradient_flow_lab.app.settings import get_settings
from tests.helpers import wait_idle, wait_until

PAGES = ["/", "/explore", "/activations", "/bptt", "/cells", "/compare", "/train"]


@pytest.mark.parametrize("path", PAGES + ["/healthz", "/static/css/site.css"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_overlong_query_and_oversized_body_are_refused(client):
    assert client.get("/api/simulate/stream?seed=1&" + "x" * 3000).status_code == 414
    body = b'{"seq_len": 10, "padding": "' + b"x" * 100_000 + b'"}'
    response = client.post("/api/simulate", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_malformed_json_body_is_a_422_not_a_500(client):
    response = client.post("/api/simulate", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_training_fields_out_of_range_get_a_422_naming_them(client):
    for query, field in (("lag=1000", "lag"), ("lr=0", "lr"), ("cells=rnn,cnn", "cells"),
                         ("optimizer=lbfgs", "optimizer"), ("steps=0", "steps")):
        response = client.get(f"/api/train/stream?{query}")
        assert response.status_code == 422, query
        detail = response.json()["detail"][0]
        assert detail["field"] == field and field in detail["msg"]


def test_one_training_stream_too_many_gets_503_with_retry_after(client):
    client.app.dependency_overrides[train_router.get_training_slots] = (
        lambda: train_router.TrainingSlots(0))
    try:
        response = client.get("/api/train/stream?steps=1")
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "slots" in response.json()["detail"]
    # the text says the same wait as the header
    assert f"{response.headers['retry-after']} seconds" in response.json()["detail"]


def test_a_client_that_leaves_stops_its_training_within_a_second(live_server):
    slots = train_router.get_training_slots(get_settings())
    threads_before = threading.active_count()
    url = f"{live_server.url}/api/train/stream"
    params = {"steps": 20000, "lag": 60, "hidden_size": 64, "batch_size": 64}
    with httpx.Client(timeout=30) as http, http.stream("GET", url, params=params) as response:
        assert response.status_code == 200
        steps_seen = 0
        for line in response.iter_lines():
            steps_seen += line == "event: step"
            if steps_seen >= 3:
                break
        assert slots.active == 1
    # the connection is closed: the server must notice and stop the work
    # one step (under 0.5 s here) may still finish
    wait_until(lambda: slots.active == 0, 1.5,
               "training went on after the client left")
    wait_until(lambda: threading.active_count() <= threads_before + 1, 2,  # the pool may keep one
               f"threads left behind: {threading.active_count()} against {threads_before}")


def test_healthz_answers_quickly_while_two_trainings_run(live_server):
    url = live_server.url
    params = {"steps": 20000, "lag": 40, "cells": "lstm"}
    stop = threading.Event()
    training = [threading.Event(), threading.Event()]

    def consume(started):
        with httpx.Client(timeout=30) as http, http.stream(
                "GET", f"{url}/api/train/stream", params=params) as response:
            for line in response.iter_lines():
                if line == "event: step":
                    started.set()
                if stop.is_set():
                    return

    workers = [threading.Thread(target=consume, args=(started,)) for started in training]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: all(started.is_set() for started in training), 30,
                   "the two trainings did not start")
        latencies = []
        with httpx.Client(timeout=10) as http:
            for _ in range(10):
                started = time.perf_counter()
                assert http.get(f"{url}/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
        # not a benchmark: only that the event loop is not blocked by the training threads
        assert max(latencies) < 2.0, latencies
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)


def test_streams_left_mid_way_leave_no_traceback_in_the_server_log(tmp_path):
    """Every slider move closes the page's previous stream: the server must take it quietly."""
    from tests.load_test import warm_server

    with warm_server(1, log=tmp_path / "server.log") as server, \
            httpx.Client(timeout=30) as http:
        url = server.url
        for _ in range(3):
            with http.stream("GET", f"{url}/api/simulate/stream", params={
                    "view": "compare", "seq_len": 1000, "hidden_size": 100}) as r:
                for line in r.iter_lines():
                    if line.startswith("event: backward"):
                        break  # leave in the middle of the sweep
        # the abandoned runs finish, find nobody listening, and the server goes quiet
        wait_idle(server.process.pid, timeout=30)
        after = http.get(f"{url}/api/simulate/stream", params={"seq_len": 30})
        assert after.status_code == 200 and "event: result" in after.text
    text = server.log_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-2000:]


def test_a_real_error_after_the_response_started_still_surfaces():
    import anyio

    from gradient_flow_lab.app.errors import QuietDisconnectMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("a bug, not a client leaving")

    async def left(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise anyio.BrokenResourceError

    async def call(inner):
        async def send(message):
            pass
        await QuietDisconnectMiddleware(inner)({"type": "http"}, None, send)

    def run(inner):  # in a thread of its own: the browser tests keep a loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(anyio.run, call, inner).result()

    run(left)  # quiet
    with pytest.raises(RuntimeError, match="a bug"):
        run(app)
