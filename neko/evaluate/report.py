"""Scoring systems side by side, and the report: Markdown, JSON, terminal tables, heatmaps.

`evaluate(examples, systems)` scores any number of named systems (each a mapping from example id to
output text) on every task x dataset of `examples`, plus each task overall (all its examples pooled,
dataset `(all)`). Two systems are computed from the examples themselves and always present:

- `1-best`: the recognizer's best hypothesis, uncorrected: the baseline of every relative change;
- `oracle`: the N-best oracle o_nb (see `neko.evaluate.oracles`);

and for tasks whose metric asks for it (speech, scored by WER) one more column, `o_cp`, the
compositional oracle. Callers add their own,
e.g. `{"corrected": ..., "rerank": ...}`. Scoring is separate from reading files (`neko.evaluate.cli`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neko.data.schema import Example, require_references
from neko.errors import NekoError
from neko.evaluate import GLEU_ITERATIONS
from neko.evaluate.metrics import Scorer, format_score, get_metric, relative_change
from neko.evaluate.oracles import COMPOSITIONAL_METRIC, compositional_oracle_wer, task_oracle_outputs
from neko.io import write_json, write_text

BASELINE = "1-best"
ORACLE = "oracle"
COMPOSITIONAL = "o_cp"
OVERALL = "(all)"
RESERVED = (BASELINE, ORACLE, COMPOSITIONAL)
UTILIZATION_PNG = "expert_utilization.png"
GATE_PNG = "gate_probability.png"


@dataclass
class ReportRow:
    """Scores of one task x dataset: `scores[metric][column]`, columns being systems (and o_cp)."""

    task: str
    dataset: str
    examples: int
    scores: dict[str, dict[str, float]]

    def relative(self, metric: str, column: str) -> float | None:
        """Relative change (percent) of `column` against the 1-best on `metric`."""
        values = self.scores[metric]
        return None if column == BASELINE else relative_change(values.get(BASELINE), values.get(column))


@dataclass
class Report:
    """Everything `write_report` and `print_report` show."""

    systems: list[str]
    rows: list[ReportRow]
    normalizer: str
    signatures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    routing: dict[str, Any] | None = None

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(row.task for row in self.rows))

    def row(self, task: str, dataset: str = OVERALL) -> ReportRow:
        for row in self.rows:
            if row.task == task and row.dataset == dataset:
                return row
        raise KeyError((task, dataset))

    def columns(self, task: str) -> list[str]:
        """Column order of a task's table: 1-best, the caller's systems, oracle, then o_cp if any."""
        present = {
            c for row in self.rows if row.task == task for values in row.scores.values() for c in values
        }
        ordered = [*self.systems, COMPOSITIONAL]
        return [c for c in ordered if c in present]

    def to_dict(self) -> dict[str, Any]:
        results = []
        for row in self.rows:
            metrics = {}
            for metric, values in row.scores.items():
                metrics[metric] = {
                    "direction": get_metric(metric).direction,
                    "scores": dict(values),
                    "relative_change": {c: row.relative(metric, c) for c in values if c != BASELINE},
                }
            results.append(
                {"task": row.task, "dataset": row.dataset, "examples": row.examples, "metrics": metrics}
            )
        record: dict[str, Any] = {
            "scale": "percent (0-100); relative_change is (system - 1-best) / 1-best in percent",
            "baseline": BASELINE,
            "systems": self.systems,
            "normalizer": self.normalizer,
            "results": results,
            "signatures": self.signatures,
            "notes": self.notes,
        }
        if self.routing is not None:
            from neko.evaluate.heatmap import expert_fractions

            record["routing"] = {**self.routing, "fractions": expert_fractions(self.routing).tolist()}
        return record


def _check_inputs(examples: Sequence[Example], systems: Mapping[str, Mapping[str, str]]) -> None:
    if not examples:
        raise NekoError("no examples to evaluate")
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise NekoError(f"example id {example.id!r} occurs twice; ids must be unique")
        seen.add(example.id)
    require_references(examples, "it cannot be scored")
    for name, outputs in systems.items():
        if name in RESERVED:
            raise NekoError(
                f"system name {name!r} is reserved for the built-in columns ({', '.join(RESERVED)})"
            )
        missing = next((e.id for e in examples if e.id not in outputs), None)
        if missing is not None:
            raise NekoError(f"system {name!r} has no output for example {missing!r}")
        unknown = next((i for i in outputs if i not in seen), None)
        if unknown is not None:
            raise NekoError(f"system {name!r} has an output for {unknown!r}, which is not among the examples")


def evaluate(
    examples: Sequence[Example],
    systems: Mapping[str, Mapping[str, str]] | None = None,
    *,
    normalizer: str = "basic",
    gleu_iterations: int = GLEU_ITERATIONS,
    errant: bool = True,
) -> Report:
    """Score `systems` (name -> {example id: output}) and the built-in baselines on `examples`."""
    systems = dict(systems or {})
    _check_inputs(examples, systems)
    scorer = Scorer(normalizer=normalizer, gleu_iterations=gleu_iterations, errant=errant)

    by_task: dict[str, list[Example]] = {}
    for example in examples:
        by_task.setdefault(example.task, []).append(example)

    all_outputs: dict[str, dict[str, str]] = {BASELINE: {e.id: e.best_hypothesis for e in examples}}
    all_outputs.update(systems)
    all_outputs[ORACLE] = task_oracle_outputs(examples, scorer)

    rows: list[ReportRow] = []
    for task, task_examples in by_task.items():
        metrics = scorer.metrics_for(task)
        compositional = scorer.task_metric(task).compositional_oracle
        groups: dict[str, list[Example]] = {}
        for example in task_examples:
            groups.setdefault(example.dataset, []).append(example)
        for dataset, group in [*sorted(groups.items()), (OVERALL, task_examples)]:
            scores: dict[str, dict[str, float]] = {}
            for metric in metrics:
                scores[metric] = {
                    name: scorer.score(metric, group, [outputs[e.id] for e in group])
                    for name, outputs in all_outputs.items()
                }
                if compositional and metric == COMPOSITIONAL_METRIC:
                    scores[metric][COMPOSITIONAL] = compositional_oracle_wer(group, scorer.normalize_fn(task))
            rows.append(ReportRow(task, dataset, len(group), scores))
    system_names = [BASELINE, *systems, ORACLE]
    return Report(system_names, rows, normalizer, dict(sorted(scorer.signatures.items())), list(scorer.notes))


# -- rendering ----------------------------------------------------------------------------------------


def _cell(row: ReportRow, metric: str, column: str) -> str:
    value = row.scores[metric].get(column)
    if value is None:
        return ""
    text = format_score(value)
    change = row.relative(metric, column)
    return text if change is None else f"{text} ({change:+.1f}%)"


def _header(column: str) -> str:
    return {ORACLE: "oracle (o_nb)", COMPOSITIONAL: "o_cp"}.get(column, column)


def render_markdown(report: Report, figures: Sequence[str] = ()) -> str:
    """The report as Markdown: one table per task, rows dataset x metric, then signatures and notes."""
    lines = [
        "# neko evaluation",
        "",
        "Values are percentages (0-100); ↓ lower is better, ↑ higher is better. In parentheses: the "
        f"relative change against the {BASELINE} (uncorrected recognizer output). `oracle (o_nb)`: best "
        "hypothesis of each N-best list; `o_cp`: compositional oracle (HyPoradise). "
        f"Normaliser for WER tasks: `{report.normalizer}`.",
    ]
    for task in report.tasks():
        columns = report.columns(task)
        lines += ["", f"## {task}", ""]
        lines.append("| dataset | n | metric | " + " | ".join(_header(c) for c in columns) + " |")
        lines.append("|---|---:|---|" + "---:|" * len(columns))
        for row in (r for r in report.rows if r.task == task):
            for metric in row.scores:
                cells = " | ".join(_cell(row, metric, c) for c in columns)
                label = get_metric(metric).arrow_label
                lines.append(f"| {row.dataset} | {row.examples} | {label} | {cells} |")
    if report.signatures:
        lines += ["", "## Signatures", ""]
        lines += [f"- {name}: `{signature}`" for name, signature in report.signatures.items()]
    if report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in report.notes]
    if figures:
        lines += ["", "## Expert utilisation", ""]
        lines += [f"![{Path(f).stem.replace('_', ' ')}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def wide_console(minimum: int = 150) -> Console:
    """A console at least `minimum` columns wide: tables stay readable in logs and narrow terminals."""
    return Console(width=max(Console().width, minimum))


def print_report(report: Report, console: Console | None = None) -> None:
    """Rich tables on the terminal, one per task, then the signatures and notes."""
    console = console or wide_console()
    for task in report.tasks():
        columns = report.columns(task)
        table = Table(title=f"{task}", title_justify="left", header_style="bold")
        table.add_column("dataset")
        table.add_column("n", justify="right")
        table.add_column("metric")
        for column in columns:
            table.add_column(_header(column), justify="right")
        for row in (r for r in report.rows if r.task == task):
            for metric in row.scores:
                table.add_row(
                    escape(row.dataset),
                    str(row.examples),
                    get_metric(metric).arrow_label,
                    *(_cell(row, metric, c) for c in columns),
                    end_section=False,
                )
        console.print(table)
    for name, signature in report.signatures.items():
        console.print(f"[dim]{escape(name)}: {escape(signature)}[/]", highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write report.md, report.json and, when routing statistics are attached, the heatmap PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: list[str] = []
    if report.routing is not None:
        from neko.evaluate.heatmap import plot_expert_utilization, plot_gate_probability

        written.append(plot_expert_utilization(report.routing, out / UTILIZATION_PNG))
        figures.append(UTILIZATION_PNG)
        if "mean_gate_prob" in report.routing:
            written.append(plot_gate_probability(report.routing, out / GATE_PNG))
            figures.append(GATE_PNG)
    markdown = out / "report.md"
    write_text(markdown, render_markdown(report, figures))
    record = report.to_dict()
    record["figures"] = figures
    data = out / "report.json"
    write_json(data, record)
    return [markdown, data, *written]
