"""What a data file holds and how wrong its recognizer is (`neko data stats FILE`).

Per task x dataset (and per task overall, dataset `(all)`): examples, how many have references,
hypotheses per example (mean/min/max), and, over the examples with references, the 1-best and N-best
oracle (o_nb) word and character error rates and the task's headline metric (`Task.metric`: WER for
asr, CER for ocr, BLEU for st, GLEU for tec), all in percent. Texts are normalised as `neko eval` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neko.data.schema import Example
from neko.evaluate import GLEU_ITERATIONS
from neko.evaluate.metrics import Scorer, format_score, get_metric
from neko.evaluate.oracles import task_oracle_outputs
from neko.evaluate.report import OVERALL, wide_console

ERROR_RATES = ("wer", "cer")
"""The error rates every task's row shows, whatever its headline metric."""


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
    examples: Iterable[Example], normalizer: str = "basic", gleu_iterations: int = GLEU_ITERATIONS
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
                scores = {
                    metric: (scorer.score(metric, with_ref, best), scorer.score(metric, with_ref, chosen))
                    for metric in dict.fromkeys([*ERROR_RATES, headline])
                }
                row.wer_1best, row.wer_oracle = scores["wer"]
                row.cer_1best, row.cer_oracle = scores["cer"]
                row.metric_1best, row.metric_oracle = scores[headline]
            rows.append(row)
    return rows


def _pair(best: float | None, oracle: float | None) -> str:
    if best is None or oracle is None:
        return "-"
    return f"{format_score(best)} / {format_score(oracle)}"


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
        table.add_row(
            row.task,
            escape(row.dataset),
            str(row.examples),
            str(row.with_reference),
            f"{row.hypotheses_mean:.2f} [{row.hypotheses_min}-{row.hypotheses_max}]",
            _pair(row.wer_1best, row.wer_oracle),
            _pair(row.cer_1best, row.cer_oracle),
            f"{get_metric(row.metric).arrow_label} {_pair(row.metric_1best, row.metric_oracle)}",
            end_section=row.dataset == OVERALL,
        )
    console.print(table)
