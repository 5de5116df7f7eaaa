"""`neko data stats FILE`: what a data file holds and how wrong its recognizer is.

Per task x dataset (and per task overall, dataset `(all)`): examples, how many have references,
hypotheses per example (mean/min/max), and, over the examples with references, the 1-best and N-best
oracle (o_nb) word and character error rates and the task's headline metric (WER for asr, CER for
ocr, BLEU for st, GLEU for tec), all in percent. Texts are normalised as `neko eval` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from neko.data.grouping import GROUP_BY_HELP, group_examples
from neko.data.schema import Example
from neko.evaluate.metrics import LOWER_IS_BETTER, METRIC_LABELS, Scorer
from neko.evaluate.oracles import task_oracle_outputs
from neko.evaluate.report import wide_console

OVERALL = "(all)"


@dataclass
class StatsRow:
    task: str
    dataset: str
    examples: int
    with_reference: int
    hypotheses_mean: float
    hypotheses_min: int
    hypotheses_max: int
    metric: str  # the task's headline metric
    wer_1best: float | None = None
    wer_oracle: float | None = None
    cer_1best: float | None = None
    cer_oracle: float | None = None
    metric_1best: float | None = None
    metric_oracle: float | None = None


def describe(
    examples: Iterable[Example], normalizer: str = "basic", gleu_iterations: int = 500
) -> list[StatsRow]:
    """One row per task x dataset, then one per task over all its datasets."""
    scorer = Scorer(normalizer=normalizer, gleu_iterations=gleu_iterations, errant=False)
    by_task: dict[str, list[Example]] = {}
    for example in examples:
        by_task.setdefault(example.task, []).append(example)
    rows: list[StatsRow] = []
    for task, task_examples in by_task.items():
        headline = scorer.headline(task)
        oracle = task_oracle_outputs([e for e in task_examples if e.reference is not None], scorer)
        groups: dict[str, list[Example]] = {}
        for example in task_examples:
            groups.setdefault(example.dataset, []).append(example)
        for dataset, group in [*sorted(groups.items()), (OVERALL, task_examples)]:
            counts = [len(e.hypotheses) for e in group]
            row = StatsRow(
                task,
                dataset,
                len(group),
                sum(e.reference is not None for e in group),
                sum(counts) / len(counts),
                min(counts),
                max(counts),
                headline,
            )
            with_ref = [e for e in group if e.reference is not None]
            if with_ref:
                best = [e.best_hypothesis for e in with_ref]
                chosen = [oracle[e.id] for e in with_ref]
                row.wer_1best = scorer.score("wer", with_ref, best)
                row.wer_oracle = scorer.score("wer", with_ref, chosen)
                row.cer_1best = scorer.score("cer", with_ref, best)
                row.cer_oracle = scorer.score("cer", with_ref, chosen)
                if headline in ("wer", "cer"):
                    row.metric_1best = row.wer_1best if headline == "wer" else row.cer_1best
                    row.metric_oracle = row.wer_oracle if headline == "wer" else row.cer_oracle
                else:
                    row.metric_1best = scorer.score(headline, with_ref, best)
                    row.metric_oracle = scorer.score(headline, with_ref, chosen)
            rows.append(row)
    return rows


def _pair(best: float | None, oracle: float | None) -> str:
    if best is None or oracle is None:
        return "-"
    return f"{best:.2f} / {oracle:.2f}"


def print_stats(rows: list[StatsRow], console: Console | None = None) -> None:
    """The rows as one rich table; pairs are "1-best / oracle"."""
    console = console or wide_console()
    table = Table(
        title="data statistics (percent; pairs are 1-best / N-best oracle)",
        title_justify="left",
        header_style="bold",
    )
    for name in ("task", "dataset", "n", "refs", "hyps mean [min-max]", "WER", "CER", "metric"):
        table.add_column(name, justify="right" if name in ("n", "refs") else "left")
    for row in rows:
        arrow = "↓" if row.metric in LOWER_IS_BETTER else "↑"
        table.add_row(
            row.task,
            row.dataset,
            str(row.examples),
            str(row.with_reference),
            f"{row.hypotheses_mean:.2f} [{row.hypotheses_min}-{row.hypotheses_max}]",
            _pair(row.wer_1best, row.wer_oracle),
            _pair(row.cer_1best, row.cer_oracle),
            f"{METRIC_LABELS.get(row.metric, row.metric)} {arrow} "
            + _pair(row.metric_1best, row.metric_oracle),
            end_section=row.dataset == OVERALL,
        )
    console.print(table)


def stats_command(
    file: Annotated[Path, typer.Argument(help="A data file (any format neko reads).")],
    normalizer: Annotated[
        str, typer.Option("--normalizer", help="Text normaliser for WER tasks: basic, whisper or none.")
    ] = "basic",
    format: Annotated[
        str | None, typer.Option("--format", help="Format of FILE (default: detected).")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Task of the examples when the format records none.")
    ] = None,
    group_by: Annotated[str, typer.Option("--group-by", help=GROUP_BY_HELP)] = "dataset",
) -> list[StatsRow]:
    """Describe a data file: examples, hypotheses per example, 1-best and N-best oracle error rates."""
    from neko.evaluate.cli import load_examples

    examples = group_examples(load_examples(file, format=format, task=task), group_by)
    rows = describe(examples, normalizer=normalizer)
    print_stats(rows)
    return rows
