"""`neko demo`: the default model on bundled real examples of each task, before and after.

The examples in `examples/demo.jsonl` (found as `neko.resources` says) come from the test splits of
the committed corpus (real recognizer output of pocketsphinx, tesseract, pocketsphinx + apertium, and
JFLEG learner text).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neko.cli_support import ModelOption, start_up
from neko.data.formats import FORMATS, read_examples
from neko.data.schema import Example
from neko.errors import NekoError
from neko.progress import QUIET_HELP, progress_bar
from neko.resources import DEMO_EXAMPLES, HOME_VARIABLE, locate

if TYPE_CHECKING:
    from neko.correct import Corrector


def demo_command(
    model: ModelOption = None,
    examples: Annotated[
        Path | None,
        typer.Option(
            "--examples",
            help=f"Examples with references (default: {DEMO_EXAMPLES} in ${HOME_VARIABLE} or the checkout).",
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help=f"format of --examples ({', '.join(FORMATS)}); detected if left out"
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="task of --examples when its format records none")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Correct bundled examples of each task and print them before and after, with error rates."""
    if examples is None:
        examples = locate(DEMO_EXAMPLES, "the demo examples are not installed", "pass a file with --examples")
    with start_up():
        from neko.correct import Corrector
        from neko.data.schema import require_references
        from neko.evaluate.metrics import Scorer, format_score, get_metric

        corrector = Corrector.from_pretrained(model)
    console = Console()
    items = known_tasks_only(read_examples(examples, format=format, task=task), corrector)
    require_references(items, "it cannot be scored", examples)
    with progress_bar("correcting", len(items), quiet) as corrector.progress:
        corrections = corrector.correct(items)
    scorer = Scorer(gleu_iterations=50, errant=False)
    by_task: dict[str, list[tuple[Example, str]]] = defaultdict(list)
    for example, correction in zip(items, corrections, strict=True):
        metric = scorer.headline(example.task)
        before = scorer.score(metric, [example], [example.best_hypothesis])
        after = scorer.score(metric, [example], [correction.text])
        note = f" (fell back to {corrector.fallback_target([correction])})" if correction.fell_back else ""
        console.rule(escape(f"{example.task} · {example.dataset} · {example.id}"), style="dim")
        console.print(f"[bold]recognizer[/]  {escape(example.best_hypothesis)}", highlight=False)
        console.print(f"[bold]neko[/]        {escape(correction.text + note)}", highlight=False)
        console.print(f"[bold]reference[/]   {escape(str(example.reference))}", highlight=False)
        change = f"{format_score(before, 1)} -> {format_score(after, 1)}"
        console.print(f"{get_metric(metric).label}: {change}", highlight=False)
        by_task[example.task].append((example, correction.text))
    table = Table(title=f"{corrector.name} on {examples.name}")
    for column in ("task", "examples", "metric", "recognizer 1-best", "neko"):
        table.add_column(column)
    for task, pairs in by_task.items():
        metric = scorer.headline(task)
        task_examples = [e for e, _ in pairs]
        before = scorer.score(metric, task_examples, [e.best_hypothesis for e in task_examples])
        after = scorer.score(metric, task_examples, [text for _, text in pairs])
        label = get_metric(metric).label
        table.add_row(task, str(len(pairs)), label, format_score(before), format_score(after))
    console.print(table)


def known_tasks_only(items: list[Example], corrector: Corrector) -> list[Example]:
    """The examples of the tasks the model was trained for; the others are named on stderr (a demo of
    a model without one of the bundled tasks shows the rest rather than failing)."""
    unknown = Counter(example.task for example in items if example.task not in corrector.tasks)
    for name, count in unknown.items():
        examples = "its example is" if count == 1 else f"its {count} examples are"
        note = f"{corrector.name} was not trained for task {name!r}: {examples} left out"
        typer.echo(note, err=True)
    kept = [example for example in items if example.task in corrector.tasks]
    if not kept:
        raise NekoError(f"{corrector.name} knows none of the examples' tasks ({', '.join(unknown)})")
    return kept
