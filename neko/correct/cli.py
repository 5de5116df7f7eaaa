"""`neko correct`: correct a data file (or standard input) with a trained model."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from neko.correct.engines import DEFAULT_ENGINE, ENGINE_HELP
from neko.errors import NekoError
from neko.progress import QUIET_HELP, progress_bar

OUTPUT_FORMATS = ("jsonl", "text")


def correct_command(
    input: Annotated[
        str,
        typer.Argument(
            metavar="[INPUT]",
            help="a data file (jsonl, hyporadise, gensec, text), or - for standard input: "
            "plain text, one hypothesis per line (needs --task)",
        ),
    ] = "-",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="a model directory; default: models/neko-tiny")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="the task of every example (needed for text input)")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="input format; detected from the file when left out")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--output-format", help="jsonl ({id, correction, fell_back}) or text (one a line)")
    ] = "jsonl",
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="write here instead of standard output")
    ] = None,
    beams: Annotated[int, typer.Option("--beams", min=1, help="beam size; 1 is greedy")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="inputs per forward pass")] = 16,
    safety_valve: Annotated[
        bool,
        typer.Option(
            "--safety-valve/--no-safety-valve",
            help="keep the 1-best where the output is degenerate (empty, looping, far too short or long)",
        ),
    ] = True,
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", min=1, help="output length limit; default: the model's")
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:N")
    ] = "auto",
    engine: Annotated[str, typer.Option("--engine", help=ENGINE_HELP)] = DEFAULT_ENGINE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Correct the hypotheses of INPUT; print the number of fallbacks to the 1-best on standard error."""
    from transformers.utils import logging as transformers_logging

    from neko.correct.corrector import Corrector
    from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
    from neko.data.formats import read_examples

    if output_format not in OUTPUT_FORMATS:
        raise NekoError(
            f"unknown output format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
        )
    model_dir = resolve_model_dir(model)
    check_model_files(model_dir)
    read_model_info(model_dir)  # registers the model's custom tasks before the input names them
    examples = read_examples(input, format=format, task=task)
    transformers_logging.disable_progress_bar()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        corrector = Corrector.from_pretrained(model_dir, device=device, engine=engine)
        with progress_bar("correcting", len(examples), quiet) as corrector.progress:
            corrections = corrector.correct(
                examples,
                task=task,
                num_beams=beams,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                safety_valve=safety_valve,
            )
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)

    if output_format == "jsonl":
        lines = [
            json.dumps(
                {"id": c.id, "correction": c.text, "fell_back": c.fell_back}
                | ({"reason": c.reason} if c.fell_back else {}),
                ensure_ascii=False,
            )
            for c in corrections
        ]
    else:
        lines = [" ".join(c.text.splitlines()) for c in corrections]
    text = "".join(line + "\n" for line in lines)
    if out is None or out == "-":
        typer.echo(text, nl=False)
    else:
        _write_atomically(Path(out), text)

    reasons = Counter(c.reason for c in corrections if c.fell_back)
    detail = f" ({', '.join(f'{reason}: {n}' for reason, n in sorted(reasons.items()))})" if reasons else ""
    where = f" to {out}" if out not in (None, "-") else ""
    fallbacks = f"{sum(reasons.values())} fell back to {corrector.fallback_target(corrections)}"
    typer.echo(f"corrected {len(corrections)} examples{where}; {fallbacks}{detail}", err=True)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` at once: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def tune_valve_command(
    data: Annotated[
        list[Path],
        typer.Argument(help="Dev examples with references (any format neko reads); several allowed."),
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="a model directory; default: models/neko-tiny")
    ] = None,
    limit_per_dataset: Annotated[
        int | None, typer.Option("--limit-per-dataset", help="use the first N examples of each dataset")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="inputs per forward pass")] = 16,
    write: Annotated[
        bool, typer.Option("--write/--dry-run", help="store the chosen settings in the model's neko.json")
    ] = False,
    engine: Annotated[str, typer.Option("--engine", help=ENGINE_HELP)] = DEFAULT_ENGINE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Choose the safety valve's settings per task on dev DATA: the max_edit_rate and fallback (1-best or
    the model's rerank) whose corrections score best (all printed, with the 1-best for comparison);
    --write stores them in the model."""
    from rich.table import Table
    from transformers.utils import logging as transformers_logging

    from neko.correct.corrector import Corrector
    from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
    from neko.correct.tuning import save_valve_settings, tune_valve
    from neko.evaluate.cli import check_references, first_per_dataset, load_examples
    from neko.evaluate.report import wide_console

    model_dir = resolve_model_dir(model)
    check_model_files(model_dir)
    read_model_info(model_dir)
    examples = []
    for path in data:
        loaded = load_examples(path)
        check_references(loaded, path)
        examples += loaded
    if limit_per_dataset is not None:
        examples = first_per_dataset(examples, limit_per_dataset)
    if not examples:
        raise NekoError(f"{data[0]}: no examples")
    transformers_logging.disable_progress_bar()
    corrector = Corrector.from_pretrained(model_dir, engine=engine)
    with progress_bar("correcting", len(examples), quiet) as corrector.progress:
        tunings = tune_valve(corrector, examples, batch_size=batch_size)

    console = wide_console()
    for tuning in tunings.values():
        table = Table(
            title=f"{tuning.task}: {tuning.metric} on {tuning.examples} dev examples "
            f"(1-best {tuning.one_best:.2f})"
        )
        for column in ("max_edit_rate", "fallback", tuning.metric, "rejected", ""):
            table.add_column(column, justify="right")
        for trial in tuning.trials:
            rate = "none" if trial.rate is None else f"{trial.rate:g}"
            chosen = "chosen" if trial is tuning.best else ""
            table.add_row(rate, trial.fallback, f"{trial.score:.2f}", str(trial.fallbacks), chosen)
        console.print(table)
    if write:
        save_valve_settings(model_dir, tunings)
        typer.echo(f"wrote max_edit_rate and fallback to {model_dir / 'neko.json'}", err=True)
