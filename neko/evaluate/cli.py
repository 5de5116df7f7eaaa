"""`neko eval`: score predictions against a data file's references and write the report.

    neko eval DATA --predictions PRED.jsonl --out reports/x [--routing-stats stats.json]

PRED.jsonl has one `{"id": ..., "correction": ...}` per line. `--predictions` may be repeated with
`NAME=PATH` to score several systems side by side (a bare path is the system `corrected`). The file
reading and checking here is separate from scoring (`neko.evaluate.report.evaluate`), so a caller that
produced corrections itself can pass them straight to `evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from neko.data.formats import read_examples
from neko.data.jsonl import open_text
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.heatmap import validate_routing_stats
from neko.evaluate.normalize import NORMALIZERS
from neko.evaluate.report import Report, evaluate, print_report, write_report

DEFAULT_SYSTEM = "corrected"


def load_examples(path: str | Path, format: str | None = None, task: str | None = None) -> list[Example]:
    """Examples of a data file in any format neko reads (`task`: for formats that do not record one)."""
    return list(read_examples(path, format=format, task=task))


def read_prediction_lines(path: str | Path) -> dict[str, tuple[str, int]]:
    """`{"id", "correction"}` JSONL lines as {id: (correction, line number)}; errors name file:line."""
    path = Path(path)
    if not path.exists():
        raise NekoError(f"{path}: no such file")
    predictions: dict[str, tuple[str, int]] = {}
    with open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise NekoError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
            if not isinstance(record, dict):
                raise NekoError(f"{where}: expected a JSON object with 'id' and 'correction'")
            for name in ("id", "correction"):
                if name not in record:
                    raise NekoError(f"{where}: missing field '{name}'")
                if not isinstance(record[name], str):
                    raise NekoError(f"{where}: field '{name}' must be a string")
            if record["id"] in predictions:
                first = predictions[record["id"]][1]
                raise NekoError(
                    f"{where}: a second prediction for id {record['id']!r} (first at line {first})"
                )
            predictions[record["id"]] = (record["correction"], number)
    return predictions


def read_predictions(path: str | Path) -> dict[str, str]:
    """`{"id", "correction"}` JSONL lines as {id: correction}; errors name file:line."""
    return {key: text for key, (text, _) in read_prediction_lines(path).items()}


def check_predictions(
    examples: list[Example], predictions: dict[str, tuple[str, int]], data: Path, pred: Path
) -> None:
    """Every example has a prediction and every prediction an example; errors name file:line or id."""
    ids = {e.id for e in examples}
    for key, (_, number) in predictions.items():
        if key not in ids:
            raise NekoError(f"{pred}:{number}: id {key!r} is not an example of {data}")
    missing = next((e.id for e in examples if e.id not in predictions), None)
    if missing is not None:
        raise NekoError(f"{pred}: no prediction for example {missing!r} of {data}")


def check_references(examples: list[Example], data: Path) -> None:
    for example in examples:
        if example.reference is None:
            raise NekoError(f"{data}: example {example.id!r} has no reference; it cannot be scored")


def load_routing_stats(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise NekoError(f"{path}: no such file")
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise NekoError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    return validate_routing_stats(stats, str(path))


def _parse_system(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, Path(path)
    return DEFAULT_SYSTEM, Path(spec)


def evaluate_and_write(
    examples: list[Example],
    systems: dict[str, dict[str, str]],
    out: Path,
    routing: dict[str, Any] | None = None,
    normalizer: str = "basic",
    gleu_iterations: int = 500,
    console: Console | None = None,
) -> Report:
    """Score checked systems, print the tables, write the report files; for callers that made the
    outputs themselves (e.g. by running a corrector first)."""
    report = evaluate(examples, systems, normalizer=normalizer, gleu_iterations=gleu_iterations)
    report.routing = routing
    console = console or Console()
    print_report(report, console)
    written = write_report(report, out)
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)
    return report


def run_eval(
    data: Path,
    predictions: list[str],
    out: Path,
    routing_stats: Path | None = None,
    normalizer: str = "basic",
    gleu_iterations: int = 500,
    format: str | None = None,
    task: str | None = None,
    console: Console | None = None,
) -> Report:
    """What `neko eval` does, callable from code; returns the report it wrote."""
    if normalizer not in NORMALIZERS:
        raise NekoError(f"unknown normaliser {normalizer!r}; expected one of {', '.join(NORMALIZERS)}")
    if not predictions:
        raise NekoError("give at least one --predictions file")
    examples = load_examples(data, format=format, task=task)
    if not examples:
        raise NekoError(f"{data}: no examples")
    check_references(examples, data)
    systems: dict[str, dict[str, str]] = {}
    for spec in predictions:
        name, path = _parse_system(spec)
        if name in systems:
            raise NekoError(f"--predictions: two systems named {name!r}; name them with NAME=PATH")
        records = read_prediction_lines(path)
        check_predictions(examples, records, data, path)
        systems[name] = {key: text for key, (text, _) in records.items()}
    routing = load_routing_stats(routing_stats) if routing_stats is not None else None
    return evaluate_and_write(examples, systems, out, routing, normalizer, gleu_iterations, console)


def eval_command(
    data: Annotated[Path, typer.Argument(help="Examples with references (any format neko reads).")],
    predictions: Annotated[
        list[str],
        typer.Option(
            "--predictions",
            "-p",
            help='JSONL of {"id", "correction"}; NAME=PATH names the system '
            "(default 'corrected'); repeat to compare systems.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md, report.json and figures.")],
    routing_stats: Annotated[
        Path | None, typer.Option("--routing-stats", help="Routing statistics JSON: adds expert heatmaps.")
    ] = None,
    normalizer: Annotated[
        str, typer.Option("--normalizer", help="Text normaliser for WER tasks: basic, whisper or none.")
    ] = "basic",
    gleu_iterations: Annotated[
        int, typer.Option("--gleu-iterations", help="Reference-sampling iterations of GLEU (JFLEG: 500).")
    ] = 500,
    format: Annotated[
        str | None, typer.Option("--format", help="Format of DATA (default: detected from name and content).")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Task of DATA's examples when its format records none.")
    ] = None,
) -> None:
    """Score predictions against DATA's references: 1-best, oracle and each system, per task and dataset."""
    run_eval(data, predictions, out, routing_stats, normalizer, gleu_iterations, format, task)
