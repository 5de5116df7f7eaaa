"""`neko eval`: score predictions against a data file's references and write the report.

    neko eval DATA --predictions PRED.jsonl --out reports/x [--routing-stats stats.json]

PRED.jsonl has one `{"id": ..., "correction": ...}` per line. `--predictions` may be repeated with
`NAME=PATH` to score several systems side by side (a bare path is the system `corrected`). The file
reading and checking here is separate from scoring (`neko.evaluate.report.evaluate`), so a caller that
produced corrections itself can pass them straight to `evaluate`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from neko.cli_support import MODEL_HELP, start_up
from neko.data.grouping import GROUP_BY_HELP, group_examples
from neko.data.schema import Example
from neko.data.selection import first_per_dataset, load_scored_examples
from neko.errors import NekoError
from neko.evaluate import GLEU_ITERATIONS
from neko.io import check_writable_folder, read_json, read_json_lines, write_json, write_json_lines
from neko.progress import QUIET_HELP, progress_bar

if TYPE_CHECKING:
    from neko.evaluate.report import Report

DEFAULT_SYSTEM = "corrected"


def read_prediction_lines(path: str | Path) -> dict[str, tuple[str, int]]:
    """`{"id", "correction"}` JSONL lines as {id: (correction, line number)}; errors name file:line."""
    predictions: dict[str, tuple[str, int]] = {}
    for where, number, record in read_json_lines(path):
        if not isinstance(record, dict):
            raise NekoError(f"{where}: expected a JSON object with 'id' and 'correction'")
        for name in ("id", "correction"):
            if name not in record:
                raise NekoError(f"{where}: missing field '{name}'")
            if not isinstance(record[name], str):
                raise NekoError(f"{where}: field '{name}' must be a string")
        if record["id"] in predictions:
            first = predictions[record["id"]][1]
            raise NekoError(f"{where}: a second prediction for id {record['id']!r} (first at line {first})")
        predictions[record["id"]] = (record["correction"], number)
    return predictions


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


def load_routing_stats(path: str | Path) -> dict[str, Any]:
    from neko.evaluate.heatmap import validate_routing_stats

    return validate_routing_stats(read_json(path), str(path))


def _parse_system(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        if not path:
            raise NekoError(f"--predictions {spec!r}: no file after {name}=")
        return name, Path(path)
    return DEFAULT_SYSTEM, Path(spec)


@dataclass
class ModelRun:
    """How `neko eval --model` runs a corrector before scoring it."""

    model: str | None
    """A model directory or a bundled model's name (`neko.correct.model_dir.resolve_model_dir`)."""
    beams: int = 1
    batch_size: int = 16
    rerank: bool = True
    routing: bool = True
    quiet: bool = False
    """No progress bar (there is none either when standard error is not a terminal)."""


def run_model(
    examples: list[Example], run: ModelRun, out: Path, console: Console
) -> tuple[dict[str, dict[str, str]], dict[str, Any] | None]:
    """Correct (and rerank) `examples` with the model; save its predictions and routing statistics in
    `out` so they can be scored again without the model. Returns (systems, routing statistics)."""
    with start_up():
        from neko.correct import Corrector
        from neko.correct.gate import DECISIONS
        from neko.correct.gate_report import write_outcomes
        from neko.evaluate.metrics import Scorer

        corrector = Corrector.from_pretrained(run.model)
    with progress_bar("correcting", len(examples), run.quiet) as corrector.progress:
        corrections = corrector.correct(
            examples, num_beams=run.beams, batch_size=run.batch_size, evidence=True
        )
    decisions = Counter(c.decision for c in corrections)
    summary = ", ".join(f"{decisions[d]} {d}" for d in DECISIONS if decisions[d])
    console.print(escape(f"{corrector.name}: {len(examples)} corrected; the text is {summary}"))
    write_outcomes(examples, corrections, Scorer(errant=False), out)
    systems = {DEFAULT_SYSTEM: {c.id: c.text for c in corrections}}
    if run.rerank:  # the gate's evidence already holds each example's rerank pick
        systems["rerank"] = {c.id: c.evidence.pick for c in corrections}
    for name, outputs in systems.items():
        records = [{"id": key, "correction": text} for key, text in outputs.items()]
        write_json_lines(out / f"predictions-{name}.jsonl", records)
    routing = None
    if run.routing and corrector.info.assignment is not None:
        outputs = [c.text for c in corrections]
        routing = corrector.routing_stats(examples, outputs=outputs, batch_size=run.batch_size).to_dict()
        write_json(out / "routing_stats.json", routing, indent=None)
    return systems, routing


def model_systems(run: ModelRun) -> list[str]:
    """The systems `run_model` makes."""
    return [DEFAULT_SYSTEM, "rerank"] if run.rerank else [DEFAULT_SYSTEM]


def evaluate_and_write(
    examples: list[Example],
    systems: dict[str, dict[str, str]],
    out: Path,
    routing: dict[str, Any] | None = None,
    normalizer: str = "basic",
    gleu_iterations: int = GLEU_ITERATIONS,
    console: Console | None = None,
) -> Report:
    """Score checked systems, print the tables, write the report files; for callers that made the
    outputs themselves (e.g. by running a corrector first)."""
    from neko.evaluate.report import evaluate, print_report, wide_console, write_report

    report = evaluate(examples, systems, normalizer=normalizer, gleu_iterations=gleu_iterations)
    report.routing = routing
    console = console or wide_console()
    print_report(report, console)
    written = write_report(report, out)
    console.print(escape("wrote " + ", ".join(str(p) for p in written)), highlight=False, soft_wrap=True)
    return report


def run_eval(
    data: Path | Sequence[Path],
    predictions: list[str],
    out: Path,
    routing_stats: Path | None = None,
    normalizer: str = "basic",
    gleu_iterations: int = GLEU_ITERATIONS,
    format: str | None = None,
    task: str | None = None,
    console: Console | None = None,
    model: ModelRun | None = None,
    limit_per_dataset: int | None = None,
    group_by: str = "dataset",
) -> Report:
    """What `neko eval` does, callable from code; returns the report it wrote."""
    from neko.evaluate.normalize import NORMALIZERS

    if normalizer not in NORMALIZERS:
        raise NekoError(f"unknown normaliser {normalizer!r}; expected one of {', '.join(NORMALIZERS)}")
    if not predictions and model is None:
        raise NekoError("give a --model to run, or at least one --predictions file")
    if gleu_iterations < 1:
        raise NekoError(f"--gleu-iterations must be at least 1, got {gleu_iterations}")
    check_writable_folder(out)
    paths = [data] if isinstance(data, str | Path) else list(data)
    examples = load_scored_examples(paths, format=format, task=task)
    if limit_per_dataset is not None:
        examples = first_per_dataset(examples, limit_per_dataset)
    examples = group_examples(examples, group_by)
    data = Path(paths[0]) if len(paths) == 1 else Path("+".join(str(p) for p in paths))
    if not examples:
        raise NekoError(f"{data}: no examples")
    routing = load_routing_stats(routing_stats) if routing_stats is not None else None
    taken = model_systems(model) if model is not None else []
    systems = read_systems(predictions, examples, data, taken, subset=limit_per_dataset is not None)
    if model is not None:
        out.mkdir(parents=True, exist_ok=True)
        made, made_routing = run_model(examples, model, out, console or Console(stderr=True))
        systems = made | systems
        routing = made_routing
    return evaluate_and_write(examples, systems, out, routing, normalizer, gleu_iterations, console)


def read_systems(
    predictions: list[str], examples: list[Example], data: Path, taken: list[str], subset: bool = False
) -> dict[str, dict[str, str]]:
    """The `--predictions` files as {system: {id: correction}}, each checked against the examples
    (all read before a model runs, so a bad file fails at once). `taken`: the names a model run will
    use; `subset`: the examples are a subset of the data files, so predictions of others are fine."""
    systems: dict[str, dict[str, str]] = {}
    kept = {e.id for e in examples}
    for spec in predictions:
        name, path = _parse_system(spec)
        if name in systems or name in taken:
            raise NekoError(f"--predictions: two systems named {name!r}; name them with NAME=PATH")
        records = read_prediction_lines(path)
        if subset:
            records = {key: value for key, value in records.items() if key in kept}
        check_predictions(examples, records, data, path)
        systems[name] = {key: text for key, (text, _) in records.items()}
    return systems


def eval_command(
    data: Annotated[
        list[Path], typer.Argument(help="Examples with references (any format neko reads); several allowed.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md, report.json and figures.")],
    predictions: Annotated[
        list[str] | None,
        typer.Option(
            "--predictions",
            "-p",
            help='JSONL of {"id", "correction"}; NAME=PATH names the system '
            "(default 'corrected'); repeat to compare systems.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help=f"Run this model first: {MODEL_HELP}.")
    ] = None,
    beams: Annotated[int, typer.Option("--beams", min=1, help="Beam size of --model's generation.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size of --model.")] = 16,
    limit_per_dataset: Annotated[
        int | None,
        typer.Option("--limit-per-dataset", min=1, help="Score the first N examples of each dataset."),
    ] = None,
    group_by: Annotated[str, typer.Option("--group-by", help=GROUP_BY_HELP)] = "dataset",
    rerank: Annotated[
        bool, typer.Option("--rerank/--no-rerank", help="Add the rerank-by-model-likelihood baseline.")
    ] = True,
    routing_stats: Annotated[
        Path | None, typer.Option("--routing-stats", help="Routing statistics JSON: adds expert heatmaps.")
    ] = None,
    normalizer: Annotated[
        str, typer.Option("--normalizer", help="Text normaliser for WER tasks: basic, whisper or none.")
    ] = "basic",
    gleu_iterations: Annotated[
        int,
        typer.Option("--gleu-iterations", min=1, help="Reference-sampling iterations of GLEU (JFLEG: 500)."),
    ] = GLEU_ITERATIONS,
    format: Annotated[
        str | None, typer.Option("--format", help="Format of DATA (default: detected from name and content).")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Task of DATA's examples when its format records none.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Score predictions (or run --model first) against DATA's references: 1-best, oracle and each
    system, per task and dataset."""
    run = None
    if model is not None:
        run = ModelRun(model, beams, batch_size, rerank, quiet=quiet)
    run_eval(
        data,
        predictions or [],
        out,
        routing_stats,
        normalizer,
        gleu_iterations,
        format,
        task,
        model=run,
        limit_per_dataset=limit_per_dataset,
        group_by=group_by,
    )
