"""Training losses of runs that saw the same batches (same data, seed and steps), side by side.

    .venv/bin/python scripts/compare-losses.py runs/ablation-dense runs/ablation-moe runs/ablation-task_guided

Prints, per run, the mean training loss per task over the last `--last` logged steps: with equal
batches the runs are compared on exactly the same tokens.
"""

import argparse
import json
from pathlib import Path

TASKS = ("asr", "st", "ocr", "tec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--last", type=int, default=5, help="logged steps to average (default 5)")
    args = parser.parse_args()
    print("| run | steps | " + " | ".join(f"loss {t}" for t in TASKS) + " | loss (all) |")
    print("|---" * (len(TASKS) + 3) + "|")
    for run in args.runs:
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        logged = [m for m in lines if "loss" in m][-args.last :]
        cells = []
        for key in [f"loss_{t}" for t in TASKS] + ["loss"]:
            values = [m[key] for m in logged if key in m]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
        steps = f"{logged[0]['step']}-{logged[-1]['step']}"
        print(f"| {run.name} | {steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
