"""A class at once: identical results are computed once and cached (GET with ETag/304, the
stream replays a cached result), identical training runs are shared, a page's newer stream
stops its older one's work, and a result sends no array twice."""

from __future__ import annotations

import json
import threading
import time

import anyio
import httpx
import pytest
from fastapi.exceptions import RequestValidationError

from gradient_flow_lab import engine
from gradient_flow_lab.app import jobs, lean, progress
from gradient_flow_lab.app.main import app
from gradient_flow_lab.app.routers import api
from gradient_flow_lab.app.settings import Settings, get_settings
from gradient_flow_lab.app.supersede import pages
from gradient_flow_lab.app.trainshare import training_runs
from tests.helpers import run_async
from tests.strict_json import sse_events, strict_loads

SMALL_TRAINING = {"cells": "rnn,gru", "lag": 5, "steps": 30, "hidden_size": 8,
                  "batch_size": 4}


@pytest.fixture
def engine_runs(monkeypatch, engine_in_threads) -> list[int]:
    """Counts the engine's forward-and-backward runs (all NumPy work starts there; in threads
    of this process, so that they can be counted)."""
    calls = []
    real_run = engine.run

    def counted(*args, **kwargs):
        calls.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(engine, "run", counted)
    return calls


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             timeout=30)


def test_a_repeated_request_does_no_numpy_work(client, engine_runs):
    first = client.post("/api/simulate", json={"seq_len": 30})
    assert first.status_code == 200
    computed = len(engine_runs)
    assert computed >= 1
    again = client.post("/api/simulate", json={"seq_len": 30, "hidden_size": 32})  # same config
    stream = client.get("/api/simulate/stream", params={"seq_len": 30})
    get = client.get("/api/simulate", params={"seq_len": 30})
    assert (again.status_code, stream.status_code, get.status_code) == (200, 200, 200)
    assert len(engine_runs) == computed, "a cached result ran the engine again"
    assert again.text == first.text == get.text
    events = sse_events(stream)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "result" and "backward" in names
    # the cached stream sends the same sweep and result as a computed one
    assert events[-1][1] == strict_loads(first.text)
    client.post("/api/simulate", json={"seq_len": 31})
    assert len(engine_runs) == 2 * computed, "another configuration must be computed"


def test_get_is_the_post_json_with_a_strong_etag_and_304(client):
    post = client.post("/api/simulate?view=bptt", json={"seq_len": 40, "truncation": 10})
    get = client.get("/api/simulate", params={"view": "bptt", "seq_len": 40, "truncation": 10})
    assert get.status_code == 200
    assert get.headers["content-type"] == "application/json"
    assert get.text == post.text
    etag = get.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert "public" in get.headers["cache-control"] and "max-age=" in get.headers["cache-control"]
    not_modified = client.get("/api/simulate", headers={"If-None-Match": etag},
                              params={"view": "bptt", "seq_len": 40, "truncation": 10})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    other = client.get("/api/simulate", headers={"If-None-Match": etag},
                       params={"view": "bptt", "seq_len": 41, "truncation": 10})
    assert other.status_code == 200 and other.headers["etag"] != etag
    assert client.get("/api/simulate", params={"seq_len": 0}).status_code == 422


def test_a_cached_get_answers_as_a_computed_one(client):
    """The cached answer (made without FastAPI's dependency solving) has the computed answer's
    status, body and headers; a cached result's 304 too."""
    params = {"view": "explore", "seq_len": 45, "unknown": "ignored"}
    computed = client.get("/api/simulate", params=params)
    cached = client.get("/api/simulate", params=params)
    assert cached.status_code == computed.status_code == 200
    assert cached.content == computed.content
    assert dict(cached.headers) == dict(computed.headers)
    etag = cached.headers["etag"]
    assert client.get("/api/simulate", params=params,
                      headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    repeated = client.get("/api/simulate?seq_len=1&seq_len=45&unknown=ignored")
    assert repeated.headers["etag"] == etag  # the last of repeated keys wins
    assert client.get("/api/simulate?seq_len=45&seq_len=0").status_code == 422


def test_two_identical_requests_at_once_share_one_computation(engine_runs, monkeypatch):
    real_build = jobs.build_view

    def slow_build(config, view):
        time.sleep(0.3)  # long enough for the second request to arrive while this one runs
        return real_build(config, view)

    monkeypatch.setattr(jobs, "build_view", slow_build)

    async def main() -> list[httpx.Response]:
        async with asgi_client() as http:
            answers: list[httpx.Response] = []

            async def ask(kind: str) -> None:
                if kind == "post":
                    answers.append(await http.post("/api/simulate", json={"seq_len": 33}))
                else:
                    answers.append(await http.get("/api/simulate/stream",
                                                  params={"seq_len": 33}))

            async with anyio.create_task_group() as tasks:
                for kind in ("post", "post", "stream"):
                    tasks.start_soon(ask, kind)
            return answers

    before = api.flights.computations
    answers = run_async(main)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert api.flights.computations - before == 1
    single = len(engine_runs)
    engine_runs.clear()
    real_build(api.SimulationQuery(seq_len=33).config, "explore")  # what one result costs
    assert single == len(engine_runs), "three requests computed more than one result"


def test_a_leader_whose_client_leaves_finishes_the_work_another_request_waits_for(
        engine_runs, monkeypatch):
    from starlette.requests import Request

    real_build = jobs.build_view

    def slow_build(config, view):  # 40 reports over 0.4 s: a stop would end it at one
        for step in range(40):
            progress.report("slow stage", step / 40)
            time.sleep(0.01)
        return real_build(config, view)

    monkeypatch.setattr(jobs, "build_view", slow_build)
    query = api.SimulationQuery(seq_len=34)
    key = api.cache_key(query)

    async def main() -> dict:
        leave = anyio.Event()

        async def leader_receive() -> dict:
            await leave.wait()
            return {"type": "http.disconnect"}

        async def follower_receive() -> dict:
            await anyio.sleep_forever()

        scope = {"type": "http", "method": "POST", "path": "/api/simulate", "headers": []}
        answers: dict = {}

        async def ask(name: str, receive) -> None:
            answers[name] = await api.obtain_result(query, Request(scope, receive))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ask, "leader", leader_receive)
            while not api.flights.in_flight(key):
                await anyio.sleep(0.005)
            tasks.start_soon(ask, "follower", follower_receive)
            while not api.flights.followed(key):
                await anyio.sleep(0.005)
            leave.set()  # the leader's client goes while the follower waits
        return answers

    answers = run_async(main)
    assert answers["follower"] is not None, "the follower got no result"
    assert '"seq_len":34' in answers["follower"].document
    single = len(engine_runs)
    engine_runs.clear()
    real_build(query.config, "explore")
    assert single == len(engine_runs), "the work was started again for the follower"


def test_a_post_whose_client_leaves_alone_stops_its_work_and_answers_nothing(
        engine_in_threads, monkeypatch):
    from starlette.requests import Request

    reports: list[int] = []

    def slow_build(config, view):
        for step in range(100):
            progress.report("slow stage", step / 100)
            reports.append(step)
            time.sleep(0.01)
        raise AssertionError("not stopped")

    monkeypatch.setattr(jobs, "build_view", slow_build)

    async def main():
        leave = anyio.Event()

        async def receive() -> dict:
            await leave.wait()
            return {"type": "http.disconnect"}

        scope = {"type": "http", "method": "POST", "path": "/api/simulate", "headers": []}
        async with anyio.create_task_group() as tasks:
            answer = []

            async def ask() -> None:
                answer.append(await api.obtain_result(api.SimulationQuery(seq_len=36),
                                                      Request(scope, receive)))

            tasks.start_soon(ask)
            while len(reports) < 3:
                await anyio.sleep(0.005)
            leave.set()
        return answer

    assert run_async(main) == [None]  # no result, no error: nobody is there to read it
    assert len(reports) < 20


def test_identical_training_streams_follow_one_run_and_take_one_slot():
    """With a single training slot, two identical streams both get the run (a follower holds no
    slot), the run is made once, and both see the same events."""
    app.dependency_overrides[get_settings] = lambda: Settings(max_training=1)
    runs = training_runs()
    started = runs.started
    try:
        async def main() -> list[httpx.Response]:
            async with asgi_client() as http:
                answers: list[httpx.Response] = []

                async def ask() -> None:
                    answers.append(await http.get("/api/train/stream", params=SMALL_TRAINING))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(ask)
                    tasks.start_soon(ask)
                return answers

        first, second = run_async(main)
        assert (first.status_code, second.status_code) == (200, 200)
        assert runs.started - started == 1
        one, two = sse_events(first), sse_events(second)
        assert one == two
        assert one[-1][0] == "done" and one[-1][1]["reason"] == "finished"
        assert sum(name == "step" for name, _ in one) == 2 * SMALL_TRAINING["steps"]
        # finished: replayed to a later client without a new run
        later = run_async(_get_training)
        assert sse_events(later) == one and runs.started - started == 1
        assert not runs.live
    finally:
        app.dependency_overrides.clear()


async def _get_training() -> httpx.Response:
    async with asgi_client() as http:
        return await http.get("/api/train/stream", params=SMALL_TRAINING)


def _older_then_newer_stream(monkeypatch) -> tuple[httpx.Response, httpx.Response, float, list]:
    """A page's stream of seq_len 20 (three seconds of reported stages before the real view),
    then 0.3 s later the same page's stream of seq_len 21. Returns both answers, the seconds the
    older one lasted, and the seq_lens whose long build ran to its end."""
    finished = []
    real_build = jobs.build_view

    def long_build(config, view):
        """Three seconds of reported stages before the real view: stops at a report."""
        for step in range(300):
            progress.report("long stage", step / 300)
            time.sleep(0.01)
        finished.append(config.seq_len)
        return real_build(config, view)

    monkeypatch.setattr(jobs, "build_view", long_build)
    page = {"X-GFL-Page": "page-0123456789"}

    async def main() -> tuple[httpx.Response, httpx.Response, float]:
        async with asgi_client() as http:
            answers: dict[str, httpx.Response] = {}
            ended: dict[str, float] = {}

            async def ask(name: str, seq_len: int) -> None:
                answers[name] = await http.get("/api/simulate/stream", headers=page,
                                               params={"seq_len": seq_len})
                ended[name] = time.monotonic()

            began = time.monotonic()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(ask, "older", 20)
                await anyio.sleep(0.3)
                tasks.start_soon(ask, "newer", 21)
            return answers["older"], answers["newer"], ended["older"] - began

    return (*run_async(main), finished)


def test_a_newer_stream_from_the_same_page_stops_the_older_run(monkeypatch, engine_in_threads):
    superseded = pages.superseded
    older, newer, older_seconds, finished = _older_then_newer_stream(monkeypatch)
    assert pages.superseded - superseded == 1
    assert finished == [21], "the superseded run computed to the end"
    assert older_seconds < 1.5, f"the older stream ran {older_seconds:.1f} s"
    assert "result" not in [name for name, _ in sse_events(older)]
    assert sse_events(newer)[-1][0] == "result"
    assert len(pages) == 0


def _numeric_arrays(value, path="") -> list[tuple[str, list]]:
    if isinstance(value, dict):
        return [found for key, item in value.items()
                for found in _numeric_arrays(item, f"{path}/{key}")]
    if isinstance(value, list):
        if len(value) >= lean.MIN_LENGTH and all(
                v is None or isinstance(v, int | float) for v in value):
            return [(path, value)]
        return [found for i, item in enumerate(value)
                for found in _numeric_arrays(item, f"{path}/{i}")]
    return []


@pytest.mark.parametrize("view", ["explore", "bptt", "cells", "compare"])
def test_a_result_sends_no_array_twice(client, view):
    response = client.get("/api/simulate", params={"view": view, "num_layers": 2})
    raw = json.loads(response.text)
    seen: dict[str, str] = {}
    for path, array in _numeric_arrays(raw):
        text = json.dumps(array)
        assert text not in seen, f"{path} repeats {seen.get(text)}"
        seen[text] = path
    # expanded as the page does, every reference is an array again
    whole = lean.expand(raw)
    assert "$ref" not in json.dumps(whole)
    if view == "explore":  # the heatmap's rows are the log10 norms the line plot draws
        rows = whole["figures"]["layer_heatmap"]["data"][0]["z"]
        lines = [t["y"] for t in whole["figures"]["grad_norms"]["data"][:2]]
        assert rows == lines


def test_superseding_needs_a_well_formed_page_id_and_spares_shared_runs():
    stop_a, stop_b = threading.Event(), threading.Event()
    with pages.latest("x", stop_a, "k1"), pages.latest("x", stop_b, "k2"):
        assert not stop_a.is_set()  # too short to be a page id: ignored
    with pages.latest("abcdefgh12", stop_a, "k1"), pages.latest("abcdefgh12", stop_b, "k2"):
        assert stop_a.is_set() and not stop_b.is_set()
    stop_a, stop_b = threading.Event(), threading.Event()
    # the newer stream asks for the same result: it will follow the older run, keep it
    with pages.latest("abcdefgh12", stop_a, "k1"), pages.latest("abcdefgh12", stop_b, "k1"):
        assert not stop_a.is_set()
    # another page waits for the older run: keep it
    with pages.latest("abcdefgh12", stop_a, "k1"), pages.latest(
            "abcdefgh12", stop_b, "k2", followed=lambda key: key == "k1"):
        assert not stop_a.is_set()
    assert len(pages) == 0


def test_a_cached_stream_is_indistinguishable_from_a_computed_one(client, engine_runs):
    params = {"view": "bptt", "seq_len": 70, "truncation": 10, "num_layers": 2}
    computed = sse_events(client.get("/api/simulate/stream", params=params))
    runs = len(engine_runs)
    cached = sse_events(client.get("/api/simulate/stream", params=params))
    assert len(engine_runs) == runs
    without_progress = lambda events: [e for e in events if e[0] != "progress"]  # noqa: E731
    assert without_progress(cached) == without_progress(computed)
    assert [name for name, _ in cached].count("backward") >= 20


def test_a_cached_stream_is_one_body_byte_identical_to_the_streamed_one(client, monkeypatch):
    """A stream of a cached result is sent as one precomputed body (with a Content-Length, one
    send): the same bytes and headers as the streaming path sends for it, counted in the cache."""
    params = {"view": "explore", "cell": "lstm", "seq_len": 60}
    first = client.get("/api/simulate/stream", params=params)  # computed, then cached
    fast = client.get("/api/simulate/stream", params=params)
    again = client.get("/api/simulate/stream", params=params)  # the body kept in the entry
    # the cached answer gives up as for an invalid query: the streaming route answers (its
    # dependency holds the real parser), from the cache
    monkeypatch.setattr(api, "_parse_query", _refuse)
    streamed = client.get("/api/simulate/stream", params=params)
    assert "content-length" in fast.headers and "content-length" not in streamed.headers
    assert fast.content == again.content == streamed.content
    for name in ("content-type", "cache-control", "x-accel-buffering"):
        assert fast.headers[name] == streamed.headers[name] == first.headers[name], name
    computed = [e for e in sse_events(first) if e[0] != "progress" or e[1]["stage"] == "starting"]
    assert sse_events(fast) == computed
    cache = api.result_cache()
    assert cache.bytes == sum(entry.size for entry in cache._entries.values())
    assert len(fast.content) < cache.bytes  # the kept body is counted


async def _refuse(request) -> None:
    raise RequestValidationError([])


def test_a_cached_stream_from_a_page_still_stops_its_older_run(client, monkeypatch,
                                                              engine_in_threads):
    client.post("/api/simulate", json={"seq_len": 21})  # the newer stream's result is cached
    older, newer, older_seconds, finished = _older_then_newer_stream(monkeypatch)
    assert "content-length" in newer.headers  # answered from the cache in one piece
    assert finished == [], "the superseded run computed to the end"
    assert older_seconds < 1.5, f"the older stream ran {older_seconds:.1f} s"
    assert sse_events(newer)[-1][0] == "result"
    assert len(pages) == 0
