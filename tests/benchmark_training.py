"""Does the training lab do what the lesson says it does? Trains the /train page's defaults,
per cell, per lag and per seed, for a fixed number of steps, and prints when each model learned
and its final accuracy.

    python tests/benchmark_training.py          # rnn, lstm, gru; lags 20 and 40; seeds 0-4
    python tests/benchmark_training.py --cells gru --vary update_bias=0,1,2,3,4 --stop-when-learned
    python tests/benchmark_training.py --cells lstm --lags 40 --set forget_bias=1

Training is a step-deterministic function of the seed (the same batches for every cell), so the
numbers are the same on every machine up to floating-point rounding; only the CPU seconds depend
on the machine, which is printed first. BLAS is limited to one thread. A model "learned" at the
first step where its mean accuracy over the last LEARNED_WINDOW steps reached LEARNED_ACCURACY
(engine/train.py; the /train page marks the same step). "final" is the mean accuracy over the
last LEARNED_WINDOW steps run. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # one core, before NumPy loads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gradient_flow_lab.app.jobs import engine_config  # noqa: E402
from gradient_flow_lab.app.schemas import TrainingConfig  # noqa: E402  (the page's defaults)
from gradient_flow_lab.engine.train import (  # noqa: E402
    LEARNED_ACCURACY,
    LEARNED_WINDOW,
    learned_step,
    train,
)


def run_one(config: TrainingConfig, cell: str, stop_when_learned: bool) -> dict:
    started = time.process_time()
    accuracies: list[float] = []
    learned = None
    record = None
    for record in train(engine_config(config, cell)):
        accuracies.append(record.accuracy if record.accuracy is not None else float("nan"))
        if learned is None:
            learned = learned_step(accuracies[-LEARNED_WINDOW:])
            if learned is not None:
                learned = record.step
                if stop_when_learned:
                    break
    assert record is not None
    return {"cell": cell, "lag": config.lag, "seed": config.seed,
            "truncation": config.truncation, "steps_run": record.step,
            "learned_step": learned,
            "final_accuracy": round(float(np.mean(accuracies[-LEARNED_WINDOW:])), 3),
            "diverged": record.diverged, "cpu_s": round(time.process_time() - started, 1)}


def parse_value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--lags", default="20,40")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per model (default: the page's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a /train default, e.g. --set noise=0 --set forget_bias=3")
    parser.add_argument("--vary", default=None, metavar="FIELD=V1,V2,...",
                        help="repeat everything for each value of one field")
    parser.add_argument("--stop-when-learned", action="store_true",
                        help="stop a model at the step it learned (saves CPU; its final "
                             "accuracy is then the one at that step)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.steps is not None:
        overrides["steps"] = args.steps
    base = TrainingConfig(**overrides)
    field, values = None, [None]
    if args.vary:
        field, listed = args.vary.split("=", 1)
        values = [parse_value(v) for v in listed.split(",")]
    lags = [int(v) for v in args.lags.split(",")]
    cells = args.cells.split(",")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(BLAS 1 thread), {platform.system()} {platform.release()}, Python "
          f"{platform.python_version()}, NumPy {np.__version__}")
    print(f"config: {base.model_dump()}")
    print(f"learned: mean accuracy over the last {LEARNED_WINDOW} steps >= {LEARNED_ACCURACY}"
          + ("; stopped there" if args.stop_when_learned else ""))
    rows = []
    for value in values:
        for cell in cells:
            for lag in lags:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    update = {"seed": seed, "lag": lag}
                    if field is not None:
                        update[field] = value
                    config = TrainingConfig(**{**base.model_dump(), **update})
                    row = run_one(config, cell, args.stop_when_learned)
                    if field is not None:
                        row[field] = value
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    head = f"| {field} " if field else ""
    print(f"{head}| cell | lag | learned | steps to learn (per seed) | median | "
          f"final accuracy (per seed) |")
    print(("|---" * (6 if field else 5)) + "|---|")
    for value in values:
        for cell in cells:
            for lag in lags:
                group = [r for r in rows if r["cell"] == cell and r["lag"] == lag
                         and (field is None or r[field] == value)]
                steps = [r["learned_step"] for r in group]
                learned = [s for s in steps if s is not None]
                median = statistics.median(learned) if len(learned) == len(group) else "-"
                shown = ", ".join("-" if s is None else str(s) for s in steps)
                finals = ", ".join(f"{r['final_accuracy']:.2f}" for r in group)
                first = f"| {value} " if field else ""
                print(f"{first}| {cell} | {lag} | {len(learned)} of {len(group)} | {shown} | "
                      f"{median} | {finals} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
