"""`neko data ...`: build, validate, convert and describe correction data (`neko.evaluate.data_stats`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from neko.data.builders.cli import build_app
from neko.data.formats import FORMATS, STDIN, read_examples, write_examples
from neko.data.grouping import GROUP_BY_HELP, group_examples
from neko.data.text import text_command
from neko.io import check_writable

data_app = typer.Typer(no_args_is_help=True)
data_app.add_typer(build_app, name="build", help="Make correction data with real recognizers.")
data_app.command("text")(text_command)

_FORMAT_HELP = f"one of {', '.join(FORMATS)}; detected from the file name and content when left out"
_TASK_HELP = "the task of every example, for formats that do not record one (hyporadise, gensec, text)"


@data_app.command()
def validate(
    file: Annotated[str, typer.Argument(help="a data file, or - for standard input")],
    format: Annotated[str | None, typer.Option("--format", "-f", help=_FORMAT_HELP)] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help=_TASK_HELP)] = None,
) -> None:
    """Read every example of FILE; report the first problem as one line (exit 2) or count them per task."""
    examples = read_examples(file, format=format, task=task)
    counts = Counter(example.task for example in examples)
    typer.echo(f"{file}: {len(examples)} valid examples")
    for name, count in sorted(counts.items()):
        typer.echo(f"  {name}: {count}")


@data_app.command()
def convert(
    source: Annotated[str, typer.Argument(metavar="IN", help="the file to read, or - for standard input")],
    target: Annotated[str, typer.Argument(metavar="OUT", help="the file to write, or - for standard output")],
    from_format: Annotated[str | None, typer.Option("--from", help=f"format of IN: {_FORMAT_HELP}")] = None,
    to_format: Annotated[
        str | None, typer.Option("--to", help=f"format of OUT, one of {', '.join(FORMATS)}; from its name")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help=_TASK_HELP)] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="set the dataset of every example")] = None,
) -> None:
    """Convert IN to OUT between the formats neko reads (jsonl, hyporadise, gensec, text)."""
    if source != STDIN and target != STDIN and Path(source).resolve() == Path(target).resolve():
        raise typer.BadParameter("IN and OUT are the same file")
    if target != STDIN:
        check_writable(target)
    examples = read_examples(source, format=from_format, task=task, dataset=dataset)
    count = write_examples(target, examples, format=to_format)
    if target != STDIN:
        typer.echo(f"wrote {count} examples to {target}", err=True)


@data_app.command("stats")
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
) -> None:
    """Describe a data file: examples, hypotheses per example, 1-best and N-best oracle error rates."""
    from neko.evaluate.data_stats import describe, print_stats

    examples = group_examples(list(read_examples(file, format=format, task=task)), group_by)
    print_stats(describe(examples, normalizer=normalizer))
