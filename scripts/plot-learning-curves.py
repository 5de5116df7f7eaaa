"""Learning curves of consecutive training runs (stages), per task, on one step axis.

    .venv/bin/python scripts/plot-learning-curves.py runs/neko-tiny-stage{2,3,4} --out curves.png

Each run continues the previous one, so its steps are shifted by the steps before it. Lines are the
training loss per task, smoothed over `--window` log lines; dots are dev losses (routed as at
inference): per task in the task's colour where the run logged them, black for the overall dev loss
of runs that logged only that; dashed verticals mark where a stage starts.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from neko.io import write_figure
from neko.train.metrics import read_metrics


def smooth(points: list[tuple[int, float]], window: int) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for i in range(len(points)):
        chunk = points[max(0, i - window + 1) : i + 1]
        steps.append(points[i][0])
        values.append(sum(v for _, v in chunk) / len(chunk))
    return steps, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--window", type=int, default=10, help="log lines per moving average")
    args = parser.parse_args()
    curves: dict[str, list[tuple[int, float]]] = {}
    dev: dict[str, list[tuple[int, float]]] = {}
    starts, offset = [], 0
    for run in args.runs:
        lines = read_metrics(run)
        starts.append((offset, run.name))
        for line in lines:
            keys = [key for key in line if key.startswith("dev_loss_")]
            if not keys and "dev_loss" in line:
                keys = ["dev_loss"]
            for key in keys:
                dev.setdefault(key.removeprefix("dev_loss_"), []).append((offset + line["step"], line[key]))
            for key in line:
                if key.startswith("loss_"):  # the training loss of one task, whichever tasks the run has
                    task = key.removeprefix("loss_")
                    curves.setdefault(task, []).append((offset + line["step"], line[key]))
        offset += max(line["step"] for line in lines)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = {}
    for task, points in sorted(curves.items()):
        if points:
            [line] = axis.plot(*smooth(points, args.window), label=f"train {task}", linewidth=1.2)
            colours[task] = line.get_color()
    for name, points in dev.items():
        label = "dev" if name == "dev_loss" else f"dev {name}"
        axis.plot(
            *zip(*points, strict=True), "o", color=colours.get(name, "black"), label=label, markersize=4
        )
    bottom, top = axis.get_ylim()
    for index, (start, name) in enumerate(starts):  # labels of neighbouring stages alternate in height
        axis.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        height = top - (index % 2) * 0.05 * (top - bottom)
        axis.text(start, height, f" {name}", va="top", fontsize=8, color="grey")
    axis.set_xlabel("fine-tuning step")
    axis.set_ylabel("loss (nats per target token)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    write_figure(args.out, figure, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
