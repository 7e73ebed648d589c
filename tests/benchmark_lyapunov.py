"""Benchmark: Lyapunov spectra, Jacobian-product singular values and the phase diagram.

Run from the repository root (a minute or two):

    python tests/benchmark_lyapunov.py
    python tests/benchmark_lyapunov.py --repeats 3
    python tests/benchmark_lyapunov.py --chaos-view-only --clock cpu

Not collected by pytest (the name does not start with ``test_``). Each time is the median of
``--repeats`` runs (default 5) after one warm-up run, on ONE BLAS thread (set before NumPy is
imported, as tests/benchmark_engine.py does). The trace (``engine.run``) is built once per
configuration and is not part of the times, except in the per-grid-point cost, which includes
``init_params``, ``random_batch`` and the forward pass.

Sizes: the page's defaults (H=32, T=50, L=1, B=1) and the largest the web budget admits in one
layer (WORK_BUDGET in app/schemas.py: T * L * B * G * H^2 <= 2.5e8). The last section times the
/chaos view itself (its spectrum, fan and phase diagram, as sized by ``schemas.chaos_plan``) at
the page's defaults and at the largest hidden size its budget admits at T = 200 and T = 1000.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[_name] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gradient_flow_lab import engine  # noqa: E402
from gradient_flow_lab.engine import lyapunov  # noqa: E402

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# time.perf_counter (wall), or with --clock cpu time.process_time: steadier on a busy machine.
CLOCK = [time.perf_counter]


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        model = next((line.split(":", 1)[1].strip() for line in lines.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.SubprocessError):
        model = platform.processor()
    return (f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"load average {os.getloadavg()[0]:.2f}")


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = CLOCK[0]()
        work()
        times.append(CLOCK[0]() - start)
    return statistics.median(times)


def make_trace(cell: str, H: int, T: int):
    params = engine.init_params(cell, 8, H, 8, seed=0)
    inputs, targets = engine.random_batch(T, 1, 8, 8, seed=0)
    return params, engine.run(cell, params, inputs, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--chaos-view-only", action="store_true",
                        help="time only the /chaos view section")
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    if args.chaos_view_only:
        print(f"machine: {machine()}")
        chaos_view_section(args.repeats)
        return
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} runs, one BLAS thread; L = B = 1\n")
    print(f"{'what':44s} {'cell':5s} {'H':>4s} {'T':>5s} {'S':>4s} {'k':>4s} "
          f"{'work':>9s} {'seconds':>9s}")
    cases = [("rnn", 32, 50), ("lstm", 32, 50), ("gru", 32, 50),
             ("rnn", 256, 1000), ("lstm", 128, 1000), ("gru", 128, 1000)]
    for cell, H, T in cases:
        params, trace = make_trace(cell, H, T)
        S = lyapunov.state_size(cell, H)
        work = T * GATES[cell] * H * H
        for k in (S, 1):
            seconds = median_seconds(
                lambda params=params, trace=trace, k=k, cell=cell: lyapunov.lyapunov_spectrum(
                    cell, params, trace, k=k), args.repeats)
            label = "lyapunov_spectrum, full" if k == S else "lyapunov_spectrum, largest only"
            print(f"{label:44s} {cell:5s} {H:4d} {T:5d} {S:4d} {k:4d} {work:9.1e} {seconds:9.4f}")
        seconds = median_seconds(
            lambda params=params, trace=trace, cell=cell, T=T:
            lyapunov.jacobian_product_singular_values(cell, params, trace, np.arange(T)),
            args.repeats)
        print(f"{'singular values of dh_T-1/dh_t, every t':44s} {cell:5s} {H:4d} {T:5d} {S:4d} "
              f"{'':4s} {work:9.1e} {seconds:9.4f}")
        some = np.unique(np.linspace(0, T - 1, 50).round().astype(int))
        seconds = median_seconds(
            lambda params=params, trace=trace, cell=cell, some=some:
            lyapunov.jacobian_product_singular_values(cell, params, trace, some), args.repeats)
        print(f"{'singular values of dh_T-1/dh_t, 50 t':44s} {cell:5s} {H:4d} {T:5d} {S:4d} "
              f"{'':4s} {work:9.1e} {seconds:9.4f}")
        seconds = median_seconds(lambda params=params, trace=trace, cell=cell:
                                 engine.jacobian_norms(trace), args.repeats)
        print(f"{'(engine.jacobian_norms, its own window)':44s} {cell:5s} {H:4d} {T:5d} {S:4d} "
              f"{'':4s} {work:9.1e} {seconds:9.4f}")
    print()
    print("phase diagram (largest_exponent_grid, k = 1, warm-up T/10), cost per grid point:")
    for cell, H, T in [("rnn", 32, 200), ("lstm", 32, 200), ("gru", 32, 200),
                       ("rnn", 64, 500), ("lstm", 64, 500)]:
        rows, cols = [0.5, 1.0, 2.0, 4.0], [0.0, 1.0, 2.0]
        seconds = median_seconds(
            lambda cell=cell, H=H, T=T, rows=rows, cols=cols: lyapunov.largest_exponent_grid(
                cell, rows, cols, hidden_size=H, seq_len=T), args.repeats)
        points = len(rows) * len(cols)
        print(f"  {cell:5s} H={H:3d} T={T:4d}: {1000 * seconds / points:7.2f} ms per point "
              f"({points} points in {seconds:.3f} s)")
    print()
    chaos_view_section(args.repeats)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


def largest_hidden_size(cell: str, seq_len: int, num_layers: int = 1) -> int:
    """The largest hidden_size whose /chaos view fits the work budget at this seq_len."""
    from gradient_flow_lab.app.schemas import WORK_BUDGET, SimulationConfig, view_work

    fits = [H for H in range(1, 257)
            if view_work(SimulationConfig(cell=cell, seq_len=seq_len, hidden_size=H,
                                          num_layers=num_layers), "chaos") <= WORK_BUDGET]
    return max(fits) if fits else 0


def chaos_view_section(repeats: int) -> None:
    """The /chaos view (app/views/chaos.py) end to end and by stage, at the page's defaults
    (T = 100, H = 32) and at the largest sizes its work budget admits."""
    from gradient_flow_lab.app.schemas import SimulationConfig, chaos_plan
    from gradient_flow_lab.app.simulation import simulate
    from gradient_flow_lab.app.views import chaos

    print("the /chaos view (build_view), median of", repeats, "runs:")
    print(f"  {'cell':5s} {'T':>5s} {'H':>4s} {'L':>2s} {'k':>3s} {'grid':>7s} {'steps':>5s} "
          f"{'spectrum':>9s} {'fan':>7s} {'phase':>7s} {'per pt':>8s} {'view':>7s}")
    cases = [("rnn", 100, 32, 1), ("lstm", 100, 32, 1), ("gru", 100, 32, 1)]
    for cell in ("rnn", "lstm", "gru"):
        cases.append((cell, 1000, largest_hidden_size(cell, 1000), 1))
        cases.append((cell, 200, largest_hidden_size(cell, 200), 1))
    for cell, T, H, L in cases:
        config = SimulationConfig(cell=cell, seq_len=T, hidden_size=H, num_layers=L)
        plan = chaos_plan(config)
        sim = simulate(config)
        spectrum = median_seconds(lambda c=config, s=sim, p=plan: engine.lyapunov_spectrum(
            c.cell, s.params, s.trace, k=p.k, warmup=c.seq_len // 10), repeats)
        steps = np.unique(np.linspace(0, T - 1, min(T, 60)).round().astype(int))
        fan = median_seconds(lambda c=config, s=sim, st=steps:
                             engine.jacobian_product_singular_values(
                                 c.cell, s.params, s.trace, st, log=True), repeats)
        phase = median_seconds(lambda c=config, p=plan: chaos.phase_diagrams(c, p, 0.0, 1.0),
                               max(1, repeats // 2))
        total = median_seconds(lambda c=config: chaos.view(c), max(1, repeats // 2))
        grid = "x".join(map(str, plan.grid)) + ("x2" if len(plan.panels) == 2 else "")
        print(f"  {cell:5s} {T:5d} {H:4d} {L:2d} {plan.k:3d} {grid:>7s} {plan.grid_steps:5d} "
              f"{spectrum:8.3f}s {fan:6.3f}s {phase:6.3f}s "
              f"{1000 * phase / plan.grid_points:6.2f}ms {total:6.3f}s")
    print("/explore's largest exponent (k = 1, top layer), at its largest sizes:")
    for cell, T, H in (("rnn", 1000, 256), ("lstm", 1000, 128), ("gru", 50, 32)):
        config = SimulationConfig(cell=cell, seq_len=T, hidden_size=H)
        sim = simulate(config)
        seconds = median_seconds(lambda s=sim: chaos.largest_exponent(s), repeats)
        print(f"  {cell:5s} T={T:5d} H={H:4d}: {1000 * seconds:7.1f} ms")


if __name__ == "__main__":
    main()
