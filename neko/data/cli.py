"""`neko data ...`: build, validate, convert and describe correction data (`neko.evaluate.data_stats`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from neko.data.builders.cli import build_app
from neko.data.formats import FORMATS, STDIN, left_out_by_text, read_examples, write_examples, writing_format
from neko.data.grouping import GROUP_BY_HELP, group_examples
from neko.data.sources import MAX_WORDS as SOURCE_MAX_WORDS
from neko.data.sources import MIN_WORDS
from neko.data.text import (
    LANGUAGES,
    MAX_WORDS,
    MAX_WORDS_LIMIT,
    PRETRAINING_SOURCES,
    default_held_out,
    held_out_keys,
    pretraining_lines,
    read_held_out,
)
from neko.errors import NekoError
from neko.io import check_not_input, check_writable, write_text
from neko.resources import CHECKOUT


def text_command(
    out: Annotated[Path, typer.Argument(help="Text file to write, one sentence per line (.gz compresses).")],
    source: Annotated[list[str] | None, typer.Option("--source", help="Repeatable; default: all.")] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="en and/or es; default: both.")
    ] = None,
    held_out: Annotated[
        list[Path] | None,
        typer.Option(
            "--held-out",
            help="Repeatable: a dev/test data file none of whose sentences may be exported; default: "
            "the checkout's data/*/*.jsonl.gz other than training files, and the HyPoradise test files.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
    min_words: Annotated[
        int, typer.Option(help=f"Shortest English sentence, in words (at least {MIN_WORDS}).")
    ] = MIN_WORDS,
    max_words: Annotated[
        int,
        typer.Option(
            help=f"Longest English sentence, in words (at most {MAX_WORDS_LIMIT}); the corpora's "
            f"sentences have at most {SOURCE_MAX_WORDS}."
        ),
    ] = MAX_WORDS,
) -> None:
    """Export clean train-split text for language-model pretraining (`data.text` in a training config)."""
    check_writable(out)
    paths = held_out or default_held_out()
    if not paths:
        raise NekoError(f"no held-out data files in {CHECKOUT / 'data'}; name them with --held-out")
    keys = held_out_keys(read_held_out(paths))
    lines = pretraining_lines(
        source or PRETRAINING_SOURCES, language or LANGUAGES, seed, keys, min_words, max_words
    )
    write_text(out, "".join(line + "\n" for line in lines))
    typer.echo(
        f"wrote {len(lines)} lines to {out} (none of the {len(keys)} sentences of {len(paths)} "
        "held-out files)",
        err=True,
    )


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
    if target != STDIN:
        check_writable(target)
        check_not_input(target, [source])
    examples = read_examples(source, format=from_format, task=task, dataset=dataset)
    lost = left_out_by_text(examples) if writing_format(target, to_format) == "text" else None
    count = write_examples(target, examples, format=to_format)
    if lost:
        typer.echo(f"warning: the text format keeps each example's 1-best only: left out {lost}", err=True)
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
    if not examples:
        raise NekoError(f"{file}: no examples to describe")
    print_stats(describe(examples, normalizer=normalizer))
