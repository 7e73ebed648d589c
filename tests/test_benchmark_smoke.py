"""tests/benchmark_engine.py still runs: one tiny configuration through its timing function.

Only the engine side is exercised (no PyTorch), and importing the benchmark leaves the thread
environment variables alone (it sets them only when run as a script).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent / "benchmark_engine.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_engine", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_times_a_tiny_configuration(monkeypatch) -> None:
    benchmark = _load_benchmark()
    for cell in benchmark.CELLS:
        ms, trace = benchmark.time_engine(cell, H=4, T=5, L=2, B=2, repeats=1)
        assert 0 < ms < 5_000, f"{cell}: {ms} ms for a 5-step run of 4 units"
        assert math.isfinite(trace.loss)
        assert trace.grad_hidden.shape == (2, 5, 2, 4)
    # A clock that moves 4 ms at each reading: every timed call lasts exactly 4 ms, so the
    # table must say 4 ms (a wrong unit or a wrong pair of readings shows here).
    ticks = itertools.count()
    monkeypatch.setitem(benchmark.CLOCKS, "wall", lambda: 0.004 * next(ticks))
    ms, _ = benchmark.time_engine("rnn", H=4, T=5, L=2, B=2, repeats=3)
    assert ms == pytest.approx(4.0)
    row = {"cell": "rnn", "H": 4, "T": 5, "L": 2, "B": 2, "engine_ms": ms, "loop_ms": None,
           "module_ms": None, "engine_over_loop": None, "engine_over_module": None}
    assert "| rnn | 4 | 5 | 2 | 2 | 4.00 |" in benchmark.markdown_table([row])
