"""What the correction gate did, for people: tuning tables, outcome tables and risk-coverage plots.

`neko tune-gate` prints per task the dev score of the 1-best, of the chosen setting and of the boldest
setting that harms no dev dataset, and writes `tuning.json` and `risk-coverage.png`. `neko eval
--model` writes `gate.md` / `gate.json` / `risk-coverage.png`: how many examples took each outcome
(`neko.correct.gate.DECISIONS`) per task and dataset, and the metric of each group with the 1-best
beside it, so a reader sees where the model's outputs were trusted and whether that paid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neko.correct.corrector import Correction
from neko.correct.gate import DECISIONS
from neko.correct.tuning import Row, TaskTuning, describe_rule, risk_coverage
from neko.data.schema import Example
from neko.evaluate.metrics import Scorer, format_score
from neko.evaluate.report import OVERALL
from neko.io import write_figure, write_json, write_text

RISK_COVERAGE_PNG = "risk-coverage.png"


def print_tunings(tunings: dict[str, TaskTuning], console: Console) -> None:
    for tuning in tunings.values():
        table = Table(
            title=f"{tuning.task}: {tuning.metric} on {tuning.examples} dev examples, "
            f"{tuning.trials} settings tried"
        )
        # rows per domain (a dataset name's first part): what the tuning judges a setting on
        for column in ("domain", "1-best", "gated (chosen)", "boldest harmless", "tuned without it"):
            table.add_column(column, justify="right" if column != "domain" else "left")
        for name, one_best in tuning.one_best_per_dataset.items():
            held_out = tuning.held_out.get(name)
            table.add_row(
                escape(name),
                f"{one_best:.2f}",
                f"{tuning.best.per_dataset[name]:.2f}",
                f"{tuning.boldest.per_dataset[name]:.2f}",
                "" if held_out is None else f"{held_out[1]:.2f}",
            )
        table.add_row(
            OVERALL, f"{tuning.one_best:.2f}", f"{tuning.best.score:.2f}", f"{tuning.boldest.score:.2f}", ""
        )
        console.print(table)
        rejected = ", ".join(f"{level!r} {reason}" for level, reason in tuning.rejected.items())
        console.print(
            f"  caution: {tuning.caution}"
            + (f" (bolder levels failed: {escape(rejected)})" if rejected else "")
        )
        console.print(
            f"  chosen: {describe_rule(tuning.best.rule, tuning.best.max_edit_rate)}; "
            f"took {tuning.best.taken}"
        )


def tuning_record(tuning: TaskTuning) -> dict[str, Any]:
    return {
        "task": tuning.task,
        "metric": tuning.metric,
        "examples": tuning.examples,
        "one_best": tuning.one_best,
        "one_best_per_dataset": tuning.one_best_per_dataset,
        "chosen": _trial_record(tuning.best),
        "boldest_harmless": _trial_record(tuning.boldest),
        "settings_tried": tuning.trials,
        "caution": tuning.caution,
        "held_out": {
            name: {"one_best": base, "tuned_without": gated}
            for name, (base, gated) in tuning.held_out.items()
        },
        "rejected_levels": tuning.rejected,
        "risk_coverage": tuning.risk_coverage,
    }


def _trial_record(trial) -> dict[str, Any]:
    return {
        "max_edit_rate": trial.max_edit_rate,
        "rule": trial.rule.to_dict(),
        "score": trial.score,
        "per_dataset": trial.per_dataset,
        "taken": trial.taken,
    }


def write_tunings(tunings: dict[str, TaskTuning], out: Path) -> list[Path]:
    """`tuning.json` and the dev risk-coverage plot in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tuning.json"
    records = [tuning_record(t) for t in tunings.values()]
    write_json(path, records, indent=1)
    curves = {t.task: (t.metric, t.risk_coverage, t.one_best) for t in tunings.values()}
    return [path, plot_risk_coverage(curves, out / RISK_COVERAGE_PNG, "dev")]


def outcome_rows(
    examples: Sequence[Example], corrections: Sequence[Correction], scorer: Scorer
) -> list[dict[str, Any]]:
    """Per task, dataset (and all datasets) and decision: the count, and the headline metric of the
    group's 1-best and of the group's corrections."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, (example, correction) in enumerate(zip(examples, corrections, strict=True)):
        for dataset in (example.dataset, OVERALL):
            groups[(example.task, dataset, correction.decision)].append(i)
    rows = []
    for (task, dataset, decision), indices in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1], DECISIONS.index(g[0][2]))
    ):
        metric = scorer.headline(task)
        chosen = [examples[i] for i in indices]
        rows.append(
            {
                "task": task,
                "dataset": dataset,
                "decision": decision,
                "n": len(indices),
                "metric": metric,
                "one_best": _score(scorer, metric, chosen, [e.best_hypothesis for e in chosen]),
                "corrected": _score(scorer, metric, chosen, [corrections[i].text for i in indices]),
            }
        )
    return rows


def _score(scorer: Scorer, metric: str, examples: list[Example], outputs: list[str]) -> float | None:
    """The metric of a group, or None where it is undefined (e.g. a group with empty references)."""
    try:
        return scorer.score(metric, examples, outputs)
    except (ZeroDivisionError, ValueError):
        return None


def outcome_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Correction gate",
        "",
        "What each example's text is (model: the model's output; unchanged: the model kept the 1-best; "
        "rerank: the hypothesis the model ranks first; 1-best: the gate kept the recognizer's output), "
        "and the headline metric of each group, the 1-best beside it.",
        "",
        "| task | dataset | decision | n | metric | 1-best | corrected |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for row in rows:
        cells = [_number(row["one_best"]), _number(row["corrected"])]
        lines.append(
            f"| {row['task']} | {row['dataset']} | {row['decision']} | {row['n']} | {row['metric']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else format_score(value)


def write_outcomes(
    examples: Sequence[Example], corrections: Sequence[Correction], scorer: Scorer, out: Path
) -> list[Path]:
    """`gate.md`, `gate.json` and the risk-coverage plot of an evaluated run, in `out`."""
    rows = outcome_rows(examples, corrections, scorer)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "gate.md", outcome_markdown(rows))
    write_json(out / "gate.json", rows, indent=1)
    written = [out / "gate.md", out / "gate.json"]
    by_task: dict[str, list[Row]] = defaultdict(list)
    for example, correction in zip(examples, corrections, strict=True):
        if correction.evidence is not None:
            by_task[example.task].append(Row(example, correction.evidence, 0.0))
    if by_task:
        curves = {}
        for task, task_rows in by_task.items():
            metric, curve = risk_coverage(task, task_rows, scorer)
            curves[task] = (metric, curve, curve[0][1])
        written.append(plot_risk_coverage(curves, out / RISK_COVERAGE_PNG, "evaluation data"))
    return written


def plot_risk_coverage(
    curves: dict[str, tuple[str, list[tuple[float, float]], float]], path: Path, what: str
) -> Path:
    """One panel per task: the metric against the share of changed outputs taken (most confident
    first), with the 1-best as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.2), squeeze=False)
    for axis, (task, (metric, curve, one_best)) in zip(axes[0], sorted(curves.items()), strict=True):
        axis.plot([c for c, _ in curve], [v for _, v in curve], marker=".")
        axis.axhline(one_best, linestyle="--", color="grey", label="1-best")
        axis.set_title(f"{task} ({what})")
        axis.set_xlabel("share of changed outputs taken, by margin")
        axis.set_ylabel(metric)
        axis.legend(fontsize=7)
    figure.tight_layout()
    try:
        write_figure(path, figure, dpi=110)
    finally:
        plt.close(figure)
    return path
