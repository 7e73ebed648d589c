"""The engine's worker processes (app/workers.py): what a job tells arrives, a stop stops it,
its errors come back with their words, a dead process is replaced, none outlives the server."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from gradient_flow_lab.app import jobs, progress, workers
from gradient_flow_lab.app.schemas import SimulationQuery
from tests.helpers import run_async, running_server, wait_until


# Module-level, so that a worker process can import and run them.
def counting_job(steps: int) -> int:
    for step in range(steps):
        progress.report(f"step {step}", step / steps)
        time.sleep(0.01)
    return steps


def failing_job() -> None:
    raise FloatingPointError("overflow in the optimiser")


def dying_job() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def own_pid() -> int:
    return os.getpid()


@pytest.fixture(scope="module")
def worker():
    process = workers.EngineProcess()
    yield process
    process.close()


def test_a_simulation_in_a_worker_tells_its_stages_and_returns_the_result(worker):
    told: list[str] = []
    entry = worker.call(jobs.simulation, SimulationQuery(seq_len=30),
                        tell=lambda kind, value: told.append(kind))
    assert worker.process.pid != os.getpid()
    assert '"seq_len":30' in entry.document and len(entry.backward) > 0
    assert "sweep" in told and told[-1] == "stage"  # the sweep early, "writing the result" last


def test_stop_ends_the_work_at_its_next_report_and_the_worker_serves_again(worker):
    stop, told = threading.Event(), []

    def tell(kind: str, value: object) -> None:
        told.append(value)
        if len(told) == 3:
            stop.set()

    started = time.monotonic()
    with pytest.raises(progress.Stopped):
        worker.call(counting_job, 1000, tell=tell, stop=stop)  # 10 s if nobody stops it
    assert time.monotonic() - started < 2
    assert len(told) < 50
    assert worker.call(counting_job, 3) == 3  # the stop does not carry over to the next call


def test_an_error_in_the_worker_is_raised_with_its_type_words_and_traceback(worker):
    with pytest.raises(FloatingPointError, match="overflow in the optimiser") as raised:
        worker.call(failing_job)
    assert any("failing_job" in note for note in raised.value.__notes__)
    assert worker.alive()


def test_blas_runs_one_thread_in_a_worker(worker):
    threads = worker.call(blas_threads)
    assert threads and set(threads) == {1}, threads


def test_a_killed_worker_is_reported_in_words_and_replaced():
    pool = workers.EnginePool(1)

    async def main() -> None:
        with pytest.raises(workers.EngineFailed, match="killed by SIGKILL"):
            await pool.run(dying_job)
        assert await pool.run(counting_job, 2) == 2

    try:
        run_async(main)  # a thread of its own: the browser tests' Playwright may hold a loop here
    finally:
        pool.close()


def test_with_no_processes_the_work_runs_in_a_thread_of_this_process():
    pool = workers.EnginePool(0)
    assert run_async(pool.run, own_pid) == os.getpid()
    assert workers.EnginePool(1).size == 1


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _tree(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()) - found:
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_the_server_computes_in_its_workers_and_none_outlives_a_killed_server():
    with running_server() as server:
        response = httpx.post(f"{server.url}/api/simulate", json={"seq_len": 25, "seed": 7},
                              timeout=60)
        assert response.status_code == 200
        engines = _tree(server.process.pid)
        assert len(engines) >= 3, engines  # the fork server and at least two workers
        os.kill(server.process.pid, signal.SIGKILL)  # no clean-up of its own
        server.process.wait(timeout=10)
        wait_until(lambda: not any(_alive(pid) for pid in engines), 10,
                   f"engine processes outlived the server: {engines}")


@pytest.mark.slow
def test_a_worker_killed_mid_request_gives_a_500_in_words_and_the_next_request_works():
    with running_server() as server:
        url = f"{server.url}/api/simulate?view=bptt"
        heavy = {"cell": "rnn", "seq_len": 1000, "hidden_size": 250, "num_layers": 2}
        answer: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answer.append(
            httpx.post(url, json=heavy, timeout=120)))
        asking.start()

        def busy_worker() -> int | None:  # a worker: a child of the fork server
            workers_now = {pid for child in _children(server.process.pid)
                           for pid in _children(child)}
            for pid in workers_now:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[11]) > 20:  # 0.2 s of user time: computing
                    return pid
            return None

        wait_until(lambda: busy_worker() is not None, 30, "no worker started computing")
        os.kill(busy_worker(), signal.SIGKILL)
        asking.join(60)
        assert answer[0].status_code == 500
        assert "killed by SIGKILL" in answer[0].json()["detail"]
        log = server.log_text()
        assert "killed by SIGKILL" in log and "Traceback" not in log  # one line, handled
        again = httpx.post(f"{server.url}/api/simulate", json={"seq_len": 30, "seed": 3},
                           timeout=60)
        assert again.status_code == 200


def test_a_worker_starts_from_a_main_read_from_standard_input():
    script = ("from gradient_flow_lab.app import workers\n"
              "from tests.test_workers import own_pid\n"
              "process = workers.EngineProcess()\n"
              "print(process.call(own_pid) != __import__('os').getpid())\n"
              "process.close()\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parent.parent, check=False)
    assert done.stdout.strip() == "True", done.stderr[-1500:]
