"""One Markdown table comparing several `neko eval` reports on their headline metric per task.

    .venv/bin/python scripts/compare-reports.py reports/ablation-dense reports/ablation-moe ...

Rows: each report's corrected output and its rerank baseline (named by the report's path), plus the
1-best and N-best oracle of the first report. Columns: task x dataset group (`(all)` by default). The
headline metric of a task is the one its definition names (`neko.tasks.Task.metric`).
"""

import argparse
import json
from pathlib import Path

from neko.evaluate.metrics import get_metric
from neko.tasks import get_task


def cells(report: dict, system: str, datasets: set[str] | None) -> dict[tuple[str, str], float]:
    out = {}
    for row in report["results"]:
        keep = row["dataset"] == "(all)" if datasets is None else row["dataset"] in datasets
        metric = get_task(row["task"]).metric
        if keep and metric in row["metrics"]:
            score = row["metrics"][metric]["scores"].get(system)
            if score is not None:
                out[(row["task"], row["dataset"])] = score
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--datasets", nargs="*", help="dataset groups to show instead of (all)")
    args = parser.parse_args()
    datasets = set(args.datasets) if args.datasets else None
    reports = {str(path): json.loads((path / "report.json").read_text()) for path in args.reports}
    first = next(iter(reports.values()))
    rows = {"1-best": cells(first, "1-best", datasets)}
    for name, report in reports.items():
        rows[name] = cells(report, "corrected", datasets)
        rows[f"{name} (rerank)"] = cells(report, "rerank", datasets)
    rows["N-best oracle"] = cells(first, "oracle", datasets)
    columns = sorted({key for values in rows.values() for key in values})
    header = [f"{task} {get_metric(get_task(task).metric).label} ({dataset})" for task, dataset in columns]
    print("| system | " + " | ".join(header) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{values[c]:.2f}" if c in values else "-" for c in columns) + " |")


if __name__ == "__main__":
    main()
