"""Sum the routing statistics of several `neko eval` reports (one per test file) into one, with its heatmap.

    .venv/bin/python scripts/merge-routing-stats.py reports/neko-tiny/*/ --out models/neko-tiny

Writes OUT/routing_stats.json (counts summed; mean gate probabilities weighted by each file's tokens
per task and layer) and OUT/routing.png (fraction of each task's routing slots per expert and layer).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from neko.evaluate.heatmap import plot_expert_utilization, validate_routing_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report folders holding routing_stats.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    stats = []
    for folder in args.reports:
        path = folder / "routing_stats.json"
        stats.append(validate_routing_stats(json.loads(path.read_text()), str(path)))
    first = stats[0]
    for other, folder in zip(stats[1:], args.reports[1:], strict=True):
        for key in ("tasks", "num_layers", "num_experts"):
            if other[key] != first[key]:
                raise SystemExit(f"{folder}: {key} differs from {args.reports[0]}'s")
    counts = np.array([s["counts"] for s in stats], dtype=float)  # file, task, layer, expert
    merged = {key: first[key] for key in ("tasks", "num_layers", "num_experts")}
    merged["counts"] = counts.sum(0).tolist()
    if all("mean_gate_prob" in s for s in stats):
        weights = counts.sum(-1, keepdims=True)  # tokens (times k) per file, task and layer
        probabilities = np.array([s["mean_gate_prob"] for s in stats], dtype=float)
        total = weights.sum(0)
        merged["mean_gate_prob"] = np.divide(
            (probabilities * weights).sum(0),
            total,
            out=np.zeros_like(total * probabilities[0]),
            where=total > 0,
        ).tolist()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "routing_stats.json").write_text(json.dumps(merged) + "\n")
    plot_expert_utilization(merged, args.out / "routing.png")
    print(f"wrote {args.out / 'routing_stats.json'} and {args.out / 'routing.png'}")


if __name__ == "__main__":
    main()
