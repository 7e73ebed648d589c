"""Does the training lab show what the syllabus claims? Runs the /train page's defaults over
several seeds with a CPU-time budget per model and prints what happened.

    python tests/benchmark_training.py                 # 5 seeds, 60 s of one core per model
    python tests/benchmark_training.py --seeds 2 --budget 20 --set lag=40 --set forget_bias=3

Budgets are CPU seconds of this process (time.process_time) with BLAS limited to one thread,
so "60 s of one core" means the same on a busy machine as on a quiet one. A model "learned" when
the mean training accuracy over its last 20 steps reached 95%. Not collected by pytest.
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

from gradient_flow_lab.app.jobs import engine_config  # noqa: E402
from gradient_flow_lab.app.schemas import TrainingConfig  # noqa: E402  (the page's defaults)
from gradient_flow_lab.engine.train import train  # noqa: E402

WINDOW = 20


def run_one(config: TrainingConfig, cell: str, budget: float) -> dict:
    started = time.process_time()
    wall = time.monotonic()
    recent: list[float] = []
    learned_at = None
    record = None
    for record in train(engine_config(config, cell)):
        recent = (recent + [record.accuracy])[-WINDOW:]
        if learned_at is None and len(recent) == WINDOW and statistics.mean(recent) >= 0.95:
            learned_at = (record.step, time.process_time() - started)
            break
        if record.diverged or time.process_time() - started > budget:
            break
    cpu = time.process_time() - started
    return {"cell": cell, "seed": config.seed, "truncation": config.truncation,
            "steps": record.step, "cpu_s": round(cpu, 1),
            "wall_s": round(time.monotonic() - wall, 1),
            "final_accuracy": round(statistics.mean(recent), 3), "diverged": record.diverged,
            "learned_step": None if learned_at is None else learned_at[0],
            "learned_cpu_s": None if learned_at is None else round(learned_at[1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=60.0, help="CPU seconds per model")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a /train default, e.g. --set lag=60 --set forget_bias=3")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--truncation", type=int, default=10,
                        help="also run lstm with this TBPTT chunk (0 to skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    overrides = dict(item.split("=", 1) for item in args.set)
    base = TrainingConfig(**overrides)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"config: {base.model_dump()}  budget {args.budget:g} CPU s per model, window {WINDOW}")
    rows = []
    plans = [(cell, 0) for cell in args.cells.split(",")]
    if args.truncation:
        plans.append(("lstm", args.truncation))
    for cell, truncation in plans:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            config = base.model_copy(update={"seed": seed, "truncation": truncation})
            row = run_one(config, cell, args.budget)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| model | learned (>=95%) | steps to learn | CPU s to learn | final accuracy |")
    print("|---|---|---|---|---|")
    for cell, truncation in plans:
        group = [r for r in rows if r["cell"] == cell and r["truncation"] == truncation]
        learned = [r for r in group if r["learned_step"] is not None]
        name = cell if not truncation else f"{cell}, truncation {truncation}"
        steps = ", ".join(str(r["learned_step"]) for r in learned) or "-"
        cpu = ", ".join(str(r["learned_cpu_s"]) for r in learned) or "-"
        finals = ", ".join(f"{r['final_accuracy']:.2f}" for r in group)
        print(f"| {name} | {len(learned)} of {len(group)} | {steps} | {cpu} | {finals} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
