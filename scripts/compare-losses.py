"""Training losses of runs that saw the same batches (same data, seed and steps), side by side.

    .venv/bin/python scripts/compare-losses.py runs/ablation-{dense,moe,task_guided,damex} --steps 520-600

Prints, per run, the mean training loss per task over the log lines at the chosen steps: with equal
batches the runs are compared on exactly the same tokens, provided each line covers the same steps
in every run. Runs logged with `run.log_every: 1` have a line per step (one batch each); `--every N`
keeps the steps divisible by N, so such runs compare with runs whose lines were single steps every N.
The tasks are those the runs' logs have a loss for: neko's five first (asr, st, ocr, tec, mt), then others.
"""

import argparse
import json
from pathlib import Path

TASK_ORDER = ("asr", "st", "ocr", "tec", "mt")


def step_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--steps", type=step_range, required=True, help="FIRST-LAST, both included")
    parser.add_argument("--every", type=int, default=1, help="only steps divisible by this (default 1)")
    args = parser.parse_args()
    first, last = args.steps
    logs = {
        run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in args.runs
    }
    found = {
        key[len("loss_") :] for lines in logs.values() for m in lines for key in m if key.startswith("loss_")
    }
    tasks = [t for t in TASK_ORDER if t in found] + sorted(found - set(TASK_ORDER))
    print("| run | steps | " + " | ".join(f"loss {t}" for t in tasks) + " | loss (all) |")
    print("|---" * (len(tasks) + 3) + "|")
    for run, lines in logs.items():
        chosen = [m for m in lines if "loss" in m and first <= m["step"] <= last]
        logged = [m for m in chosen if m["step"] % args.every == 0]
        if not logged:
            raise SystemExit(f"{run}: no training loss logged at steps {first}-{last} (every {args.every})")
        cells = []
        for key in [f"loss_{t}" for t in tasks] + ["loss"]:
            values = [m[key] for m in logged if key in m]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
        steps = ", ".join(str(m["step"]) for m in logged) if len(logged) <= 6 else f"{len(logged)} lines"
        print(f"| {run.name} | {steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
