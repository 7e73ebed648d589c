"""Benchmark: the NumPy engine against PyTorch CPU autograd (float64), single-threaded.

Run from the repository root:

    python tests/benchmark_engine.py                  # full table (a few minutes)
    python tests/benchmark_engine.py --quick          # fewer repeats
    python tests/benchmark_engine.py --cells rnn,lstm --json /tmp/bench.json
    python tests/benchmark_engine.py --clock cpu      # process CPU time: steadier on a busy box

Not collected by pytest (the name does not start with ``test_``); tests/test_benchmark_smoke.py
runs one tiny configuration through ``time_engine`` so this script cannot rot.

What is timed, for each cell and (H, T, L, B) with D = K = 8 inputs / classes and a target at
every step (cross-entropy, reduction "sum"):

* engine        one ``engine.run(cell, params, inputs, targets)``: forward, loss, full BPTT, every
                parameter gradient and every per-step d loss / d h_t (``Trace.grad_hidden``).
* torch loop    the same work in PyTorch autograd: a Python loop over time through
                ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` per layer, calling
                ``retain_grad()`` on every h_t (what per-step gradient capture needs), then
                ``backward()`` and stacking the h_t gradients.
* torch module  ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (float64) with an ``nn.Linear`` head, loss at
                every step, ``backward()``: parameter gradients only, no per-step gradients. The
                fused-module reference point.

All three use the engine's parameters (PyTorch's own layout), so the losses must agree; the
script checks that and warns otherwise. Each time is the median of several runs after one
warm-up run, with the garbage collector off inside a run (as ``timeit`` does); the three forms of
one configuration are timed round-robin, so background load hits them alike and the ratios stay
fair on a shared machine (the load average is printed at the top and bottom).

Threads: both sides run on ONE thread. The BLAS thread variables below are set in os.environ
BEFORE NumPy is imported (OpenBLAS / MKL / OpenMP read them once, at load time), and
``torch.set_num_threads(1)`` is called before timing. They are only set when this file runs as a
script, so importing it (the smoke test) leaves the environment alone. OPENBLAS_CORETYPE, which
some machines set, is deliberately left untouched.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from gradient_flow_lab import engine  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
# (H, T, L, B)
CONFIGS = ((32, 100, 1, 1), (64, 200, 2, 1), (128, 500, 2, 1), (128, 1000, 1, 8), (256, 200, 3, 16))
INPUT_SIZE = 8  # D
OUTPUT_SIZE = 8  # K
REPEATS, QUICK_REPEATS, BIG_REPEATS = 7, 3, 3
BIG_SECONDS = 1.0  # a warm-up run slower than this gets BIG_REPEATS timed runs at most


# ---------------------------------------------------------------------------------------------
# Problems and timing


def make_problem(cell, H, T, L, B, *, D=INPUT_SIZE, K=OUTPUT_SIZE, seed=0):
    """Engine parameters (PyTorch default init), inputs (T, B, D) and a target at every step."""
    rng = np.random.default_rng(seed)
    params = engine.init_params(cell, D, H, K, L, seed=rng)
    inputs = rng.normal(size=(T, B, D))
    targets = rng.integers(0, K, size=(T, B))
    return params, inputs, targets


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_seconds(fns, repeats, clock="wall"):
    """Median time of each zero-argument callable in ``fns`` (a dict name -> fn).

    clock: "wall" (time.perf_counter, the default) or "cpu" (time.process_time: this process's
    CPU time, which is less disturbed by other processes on a shared machine; everything timed
    here runs on one thread, so CPU time is the work itself).

    One warm-up call each, then ``repeats`` rounds; within a round the callables run one after
    the other (round-robin), so load from other processes hits them alike and the ratios stay
    fair. Rounds are capped at BIG_REPEATS when a warm-up call took over BIG_SECONDS. The garbage
    collector is off inside each timed call. Returns ({name: seconds}, {name: last result}).
    """
    now = CLOCKS[clock]
    results, warmup = {}, 0.0
    for name, fn in fns.items():
        gc.collect()
        start = now()
        results[name] = fn()
        warmup = max(warmup, now() - start)
    if warmup > BIG_SECONDS:
        repeats = min(repeats, BIG_REPEATS)
    times = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            gc.collect()
            gc.disable()
            try:
                start = now()
                results[name] = fn()
                times[name].append(now() - start)
            finally:
                gc.enable()
    return {name: statistics.median(ts) for name, ts in times.items()}, results


def engine_step(cell, H, T, L, B, *, seed=0):
    """The engine's work for one configuration: a callable returning the Trace."""
    params, inputs, targets = make_problem(cell, H, T, L, B, seed=seed)
    return lambda: engine.run(cell, params, inputs, targets)


def time_engine(cell, H, T, L, B, repeats=REPEATS, *, seed=0):
    """Median milliseconds of one ``engine.run`` on this configuration, and the last Trace."""
    seconds, results = median_seconds({"engine": engine_step(cell, H, T, L, B, seed=seed)},
                                      repeats)
    return seconds["engine"] * 1e3, results["engine"]


def _torch_tensors(torch, params, inputs, targets):
    to = {key: torch.from_numpy(value.copy()) for key, value in params.items()}
    return to, torch.from_numpy(inputs.copy()), torch.from_numpy(targets.astype(np.int64))


def _build_head(torch, to, H, K):
    head = torch.nn.Linear(H, K, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(to["head.weight"])
        head.bias.copy_(to["head.bias"])
    return head


def torch_loop_step(cell, H, T, L, B, *, seed=0):
    """PyTorch, explicit step loop over nn.*Cell per layer with retain_grad() on every h_t.
    Returns a callable giving (loss, grad_hidden (L, T, B, H) tensor)."""
    import torch
    import torch.nn.functional as F

    params, inputs, targets = make_problem(cell, H, T, L, B, seed=seed)
    K = params["head.weight"].shape[0]
    to, x_all, y_all = _torch_tensors(torch, params, inputs, targets)
    cell_class = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
    cells = []
    for layer in range(L):
        fan_in = INPUT_SIZE if layer == 0 else H
        module = cell_class(fan_in, H, dtype=torch.float64)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(module, name).copy_(to[f"{name}_l{layer}"])
        cells.append(module)
    head = _build_head(torch, to, H, K)
    modules = [*cells, head]

    def step():
        for module in modules:
            module.zero_grad(set_to_none=True)
        layer_input = list(x_all.unbind(0))  # T tensors (B, D)
        retained = []
        for layer in range(L):
            h = torch.zeros(B, H, dtype=torch.float64)
            c = torch.zeros(B, H, dtype=torch.float64) if cell == "lstm" else None
            hs = []
            for t in range(T):
                if cell == "lstm":
                    h, c = cells[layer](layer_input[t], (h, c))
                else:
                    h = cells[layer](layer_input[t], h)
                h.retain_grad()
                hs.append(h)
            retained.append(hs)
            layer_input = hs
        logits = head(torch.stack(layer_input))  # (T, B, K)
        loss = F.cross_entropy(logits.reshape(-1, K), y_all.reshape(-1), reduction="sum")
        loss.backward()
        grad_hidden = torch.stack([torch.stack([h.grad for h in hs]) for hs in retained])
        return loss.item(), grad_hidden

    return step


def torch_module_step(cell, H, T, L, B, *, seed=0):
    """PyTorch nn.RNN / nn.LSTM / nn.GRU (float64) + nn.Linear head, loss at every step.
    Returns a callable giving the loss."""
    import torch
    import torch.nn.functional as F

    params, inputs, targets = make_problem(cell, H, T, L, B, seed=seed)
    K = params["head.weight"].shape[0]
    to, x_all, y_all = _torch_tensors(torch, params, inputs, targets)
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module_class(INPUT_SIZE, H, num_layers=L, dtype=torch.float64)
    rnn.load_state_dict({key: value for key, value in to.items() if not key.startswith("head.")})
    head = _build_head(torch, to, H, K)

    def step():
        rnn.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        out, _ = rnn(x_all)  # (T, B, H), zero initial state
        logits = head(out)
        loss = F.cross_entropy(logits.reshape(-1, K), y_all.reshape(-1), reduction="sum")
        loss.backward()
        return loss.item()

    return step


# ---------------------------------------------------------------------------------------------
# Machine description


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        pools = [f"{p.get('internal_api')} {p.get('version')} ({p.get('threading_layer')}, "
                 f"{p.get('num_threads')} threads, {p.get('architecture')})"
                 for p in threadpool_info()]
        if pools:
            return "threadpoolctl: " + "; ".join(pools)
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        text = f"np.show_config: {blas.get('name')} {blas.get('version')}"
        if blas.get("openblas configuration"):
            text += f" [{blas['openblas configuration']}]"
        return text
    except Exception as error:  # older NumPy: no mode="dicts"
        return f"unknown ({type(error).__name__})"


def _loadavg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info(torch_version):
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_version,
        "blas": _blas_info(),
        "loadavg_start": _loadavg(),
        "threads": {var: os.environ.get(var) for var in
                    ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "OPENBLAS_CORETYPE")},
    }


# ---------------------------------------------------------------------------------------------
# Report


def _fmt_ms(ms):
    return "n/a" if ms is None else (f"{ms:.2f}" if ms < 10 else f"{ms:.1f}")


def _fmt_ratio(ratio):
    return "n/a" if ratio is None else f"{ratio:.2f}"


def markdown_table(rows):
    header = ("| cell | H | T | L | B | engine ms | torch step loop ms | torch module ms "
              "| engine/loop | engine/module |")
    lines = [header, "|" + "---|" * 5 + "---:|" * 5]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['H']} | {r['T']} | {r['L']} | {r['B']} "
                     f"| {_fmt_ms(r['engine_ms'])} | {_fmt_ms(r['loop_ms'])} "
                     f"| {_fmt_ms(r['module_ms'])} | {_fmt_ratio(r['engine_over_loop'])} "
                     f"| {_fmt_ratio(r['engine_over_module'])} |")
    return "\n".join(lines)


def check_targets(rows):
    """The issue's targets: B = 1 and H <= 128: engine <= 0.2x loop and <= 0.4x module;
    B >= 8: engine <= 1.0x module. Returns lines of text."""
    lines = []
    for r in rows:
        checks = []
        if r["B"] == 1 and r["H"] <= 128:
            checks = [("engine/loop <= 0.2", r["engine_over_loop"], 0.2),
                      ("engine/module <= 0.4", r["engine_over_module"], 0.4)]
        elif r["B"] >= 8:
            checks = [("engine/module <= 1.0", r["engine_over_module"], 1.0)]
        for name, value, limit in checks:
            verdict = "n/a" if value is None else ("met" if value <= limit else "NOT met")
            lines.append(f"- {r['cell']} H={r['H']} T={r['T']} L={r['L']} B={r['B']}: "
                         f"{name}: {'n/a' if value is None else f'{value:.3f}'} -> {verdict}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPEATS} timed runs each")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma list, e.g. rnn,lstm")
    parser.add_argument("--json", metavar="PATH", help="also save the results here")
    parser.add_argument("--repeats", type=int, help=f"timed runs each (default {REPEATS})")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default) or cpu: process CPU time, steadier on a busy machine")
    args = parser.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown cell(s) {unknown}; choose from {list(CELLS)}")
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)

    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(1)

    info = machine_info(torch.__version__ if torch else None)
    print("# Engine benchmark")
    print()
    print(f"- CPU: {info['cpu_model']} (platform.processor: {info['processor']!r}), "
          f"{info['cores']} cores ({info['cores_usable']} usable)")
    print(f"- OS: {info['platform']}")
    print(f"- Python {info['python']}, NumPy {info['numpy']}, "
          f"PyTorch {info['torch'] or 'not installed'}")
    print(f"- BLAS: {info['blas']}")
    print(f"- Threads: {', '.join(f'{k}={v}' for k, v in info['threads'].items() if v)}"
          + (f", torch.get_num_threads()={torch.get_num_threads()}" if torch else ""))
    print(f"- Load average at start: {_loadavg()}")
    print(f"- D = K = {INPUT_SIZE}, loss at every step, float64; {args.clock} clock, "
          f"median of {repeats} runs "
          f"(at most {BIG_REPEATS} when one run takes over {BIG_SECONDS:g} s), after a warm-up")
    print()
    sys.stdout.flush()

    rows, warnings = [], []
    for cell in cells:
        for H, T, L, B in CONFIGS:
            fns = {"engine": engine_step(cell, H, T, L, B)}
            if torch is not None:
                fns["loop"] = torch_loop_step(cell, H, T, L, B)
                fns["module"] = torch_module_step(cell, H, T, L, B)
            seconds, results = median_seconds(fns, repeats, args.clock)
            ms = {name: value * 1e3 for name, value in seconds.items()}
            trace = results["engine"]
            row = {"cell": cell, "H": H, "T": T, "L": L, "B": B, "engine_ms": ms["engine"],
                   "loop_ms": None, "module_ms": None, "engine_over_loop": None,
                   "engine_over_module": None, "engine_loss": trace.loss}
            if torch is not None:
                (loop_loss, loop_grad_hidden), module_loss = results["loop"], results["module"]
                row.update(loop_ms=ms["loop"], module_ms=ms["module"],
                           engine_over_loop=ms["engine"] / ms["loop"],
                           engine_over_module=ms["engine"] / ms["module"],
                           loop_loss=loop_loss, module_loss=module_loss)
                # Same work? Losses and per-step gradients must agree with the engine's.
                scale = max(1.0, abs(trace.loss))
                grad_err = float(np.max(np.abs(loop_grad_hidden.numpy() - trace.grad_hidden))
                                 / max(1e-300, np.max(np.abs(trace.grad_hidden))))
                row["grad_hidden_rel_err"] = grad_err
                if (abs(loop_loss - trace.loss) > 1e-9 * scale
                        or abs(module_loss - trace.loss) > 1e-9 * scale or grad_err > 1e-8):
                    warnings.append(f"{cell} {H, T, L, B}: engine loss {trace.loss!r}, loop "
                                    f"{loop_loss!r}, module {module_loss!r}, grad_hidden rel err "
                                    f"{grad_err:.1e}")
            rows.append(row)
            print(f"  {cell:4s} H={H:<3d} T={T:<4d} L={L} B={B:<2d}"
                  f"  engine {_fmt_ms(ms['engine'])} ms"
                  f"  loop {_fmt_ms(row['loop_ms'])} ms  module {_fmt_ms(row['module_ms'])} ms",
                  file=sys.stderr, flush=True)

    print(markdown_table(rows))
    print()
    if torch is not None:
        print("Targets (from the issue):")
        print()
        print("\n".join(check_targets(rows)))
        print()
        print("Engine and PyTorch agree (loss to 1e-9 relative, per-step d loss / d h_t to 1e-8):"
              f" {'yes' if not warnings else 'NO'}")
        for warning in warnings:
            print(f"  WARNING: {warning}")
    else:
        print("PyTorch is not importable: engine times only.")
    print(f"Load average at end: {_loadavg()}")
    if args.json:
        info["loadavg_end"] = _loadavg()
        Path(args.json).write_text(json.dumps({"machine": info, "repeats": repeats,
                                               "clock": args.clock,
                                               "results": rows}, indent=2))
        print(f"\nSaved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
