"""`neko correct`: correct a data file (or standard input) with a trained model."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from neko.cli_support import DeviceOption, ModelOption, start_up
from neko.correct.engines import (
    DEFAULT_ENGINE,
    DTYPE_HELP,
    ENGINE_HELP,
    check_dtype,
    check_engine,
    pick_engine,
)
from neko.data.formats import FORMATS
from neko.errors import NekoError
from neko.io import check_not_input, check_writable, check_writable_folder, json_line, write_text
from neko.progress import QUIET_HELP, progress_bar

if TYPE_CHECKING:
    from neko.correct.corrector import Correction, Corrector

OUTPUT_FORMATS = ("jsonl", "text")


def correct_command(
    input: Annotated[
        str,
        typer.Argument(
            metavar="[INPUT]",
            help="a data file (jsonl, hyporadise, gensec, text), or - for standard input (format "
            "detected alike); text is one hypothesis per line and needs --task",
        ),
    ] = "-",
    model: ModelOption = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="the task of every example (needed for text input)")
    ] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"input format ({', '.join(FORMATS)}); detected when left out"),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--output-format",
            help="jsonl ({id, correction, fell_back}) or text (one a line; for text input, line for line)",
        ),
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
    gate: Annotated[
        bool,
        typer.Option(
            "--gate/--no-gate",
            help="let the model's tuned correction gate decide per example whether its output replaces "
            "the 1-best (tasks never tuned with `neko tune-gate` keep the 1-best); --no-gate takes every "
            "output the safety valve passes",
        ),
    ] = True,
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", min=1, help="output length limit; default: the model's")
    ] = None,
    device: DeviceOption = "auto",
    engine: Annotated[str, typer.Option("--engine", help=ENGINE_HELP)] = DEFAULT_ENGINE,
    dtype: Annotated[str, typer.Option("--dtype", help=DTYPE_HELP)] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Correct the hypotheses of INPUT; print how many kept the 1-best (or the rerank), and why, on
    standard error."""
    with start_up():
        from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
        from neko.data.formats import read_data

    to_file = check_output(output_format, out)
    if to_file:
        check_not_input(out, [input])
    check_dtype(dtype, check_engine(engine))
    model_dir = resolve_model_dir(model)
    check_model_files(model_dir, onnx=True)  # the weights a torch engine needs are checked on loading
    read_model_info(model_dir)  # registers the model's custom tasks before the input names them
    data = read_data(input, format=format, task=task)
    if not data.examples:
        raise NekoError(f"{input}: no examples to correct")
    # `auto` may take the onnx engine for greedy decoding in float32 only (beam search runs on
    # transformers; the export is float32)
    inputs = len(data.examples) if beams == 1 and dtype == "auto" else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        corrector = load_corrector(model_dir, device, engine, inputs, None if dtype == "auto" else dtype)
        with progress_bar("correcting", len(data.examples), quiet) as corrector.progress:
            corrections = corrector.correct(
                data.examples,
                task=task,
                num_beams=beams,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                safety_valve=safety_valve,
                gate=gate,
            )
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)

    text = format_corrections(corrections, output_format, data.blank_lines)
    if to_file:
        write_text(out, text)
    else:
        typer.echo(text, nl=False)
    for line in summary(corrections, corrector, out if to_file else None):
        typer.echo(line, err=True)


def check_output(output_format: str, out: str | None) -> bool:
    """Refuse an unknown output format or an unwritable `--out` before any work; True: write a file."""
    if output_format not in OUTPUT_FORMATS:
        raise NekoError(
            f"unknown output format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
        )
    to_file = out not in (None, "-")
    if to_file:
        check_writable(out)
    return to_file


def load_corrector(
    model_dir: Path, device: str, engine: str, inputs: int | None, dtype: str | None = None
) -> Corrector:
    """The corrector of `model_dir` on the engine `engine` picks for `inputs` examples, its weights in
    `dtype` (None: `load_model`'s default); torch and transformers are imported (and the device
    checked) only when that engine needs them."""
    with start_up():
        from neko.correct.corrector import Corrector

        if pick_engine(engine, model_dir, inputs, device) != "onnx":
            from neko.correct.torch_lm import resolve_device
            from neko.precision import cpu_has_bf16, emulated_bf16

            if resolve_device(device).type == "cpu" and dtype == "bfloat16" and not cpu_has_bf16():
                typer.echo(f"{emulated_bf16('--dtype bfloat16')}; leave --dtype auto for float32", err=True)
        return Corrector.from_pretrained(model_dir, device=device, dtype=dtype, engine=engine, inputs=inputs)


def format_corrections(corrections: list[Correction], output_format: str, blank_lines: list[int]) -> str:
    """The corrections as `output_format`: JSON lines with each decision (and why the output was not
    taken), or plain text line for line (`text_lines`)."""
    if output_format == "text":
        return text_lines(corrections, blank_lines)
    return "".join(
        json_line(
            {"id": c.id, "correction": c.text, "fell_back": c.fell_back, "decision": c.decision}
            | ({"reason": c.reason} if c.fell_back else {})
        )
        for c in corrections
    )


def summary(corrections: list[Correction], corrector: Corrector, out: str | None) -> list[str]:
    """What standard error says after correcting: how many fell back and why, then why closed gates
    kept their 1-best."""
    reasons = Counter(c.reason for c in corrections if c.fell_back)
    detail = f" ({', '.join(f'{reason}: {n}' for reason, n in sorted(reasons.items()))})" if reasons else ""
    where = f" to {out}" if out else ""
    fallbacks = f"{sum(reasons.values())} fell back to {corrector.fallback_target(corrections)}"
    closed = sorted({c.task for c in corrections if c.reason == "gate closed"})
    return [
        f"corrected {len(corrections)} examples{where}; {fallbacks}{detail}",
        *gate_notes(closed, corrector.info.gate),
    ]


def gate_notes(closed: list[str], tuned: Mapping[str, object]) -> list[str]:
    """Why the `closed` tasks kept their 1-best: a gate tuned closed (no setting gained on the dev
    data) or one never tuned (`tuned`: the model's gate rules)."""
    notes = []
    kept = [task for task in closed if task in tuned]
    untuned = [task for task in closed if task not in tuned]
    if kept:
        notes.append(
            f"note: the gate of {', '.join(kept)} was tuned closed (no setting gained on its dev data), "
            "so the 1-best was kept; pass --no-gate to see the model's outputs"
        )
    if untuned:
        notes.append(
            f"note: the gate of {', '.join(untuned)} is not tuned, so the 1-best was kept; tune it on dev "
            "data with `neko tune-gate DEV --model DIR --write`, or pass --no-gate"
        )
    return notes


def text_lines(corrections: list[Correction], blank_lines: list[int]) -> str:
    """One correction a line (line breaks inside one become spaces); the blank lines of a text input
    stay where they were, so output line N is the correction of input line N."""
    remaining = iter(corrections)
    blank = set(blank_lines)
    lines = []
    for number in range(1, len(corrections) + len(blank_lines) + 1):
        lines.append("" if number in blank else re.sub(r"[\r\n]+", " ", next(remaining).text))
    return "".join(line + "\n" for line in lines)


def tune_gate_command(
    data: Annotated[
        list[Path],
        typer.Argument(help="Dev examples with references (any format neko reads); several allowed."),
    ],
    model: ModelOption = None,
    limit_per_dataset: Annotated[
        int | None,
        typer.Option("--limit-per-dataset", min=1, help="use the first N examples of each dataset"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="use the first N examples of each file")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="inputs per forward pass")] = 16,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="JSONL of the gate's evidence: reused when it exists, else written"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder for tuning.json and the risk-coverage plot")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write/--dry-run", help="store the chosen settings in the model's neko.json")
    ] = False,
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"format of DATA ({', '.join(FORMATS)}); detected when left out"),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="task of DATA's examples when its format records none")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help=ENGINE_HELP)] = DEFAULT_ENGINE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Tune the correction gate per task on dev DATA (never a test file): the safety valve's edit limit
    and the margins, familiarity and N-best support an output needs to replace the 1-best; every dev
    domain a setting touches must gain at least 1% of its 1-best, and the setting chosen with any one
    domain held out may not make that domain lose more than 1%. --write stores the choice in the
    model's neko.json."""
    with start_up():
        from neko.correct.corrector import Corrector
        from neko.correct.gate_report import print_tunings, write_tunings
        from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
        from neko.correct.tuning import (
            collect_rows,
            model_fingerprint,
            read_rows,
            save_gate_settings,
            tune_rows,
            write_rows,
        )
        from neko.data.selection import first_per_dataset, load_scored_examples
        from neko.evaluate.report import wide_console
        from neko.resources import NEKO_JSON

    model_dir = resolve_model_dir(model)
    check_model_files(model_dir, onnx=True)  # a torch engine checks its weights on loading
    read_model_info(model_dir)
    if write:
        check_writable(model_dir / NEKO_JSON)
    if evidence is not None and not evidence.exists():
        check_writable(evidence)
    if out is not None:
        check_writable_folder(out)
    for path in data:
        refuse_test_file(path)
    examples = load_scored_examples(data, format=format, task=task, limit=limit)
    if limit_per_dataset is not None:
        examples = first_per_dataset(examples, limit_per_dataset)
    if not examples:
        raise NekoError(f"{data[0]}: no examples")
    if evidence is not None and evidence.exists():
        rows = read_rows(evidence, examples, model_fingerprint(model_dir))
    else:
        with start_up():
            corrector = Corrector.from_pretrained(model_dir, engine=engine, inputs=len(examples))
        with progress_bar("correcting", len(examples), quiet) as corrector.progress:
            rows = collect_rows(corrector, examples, batch_size)
        if evidence is not None:
            write_rows(evidence, rows, model_fingerprint(model_dir))
    tunings = tune_rows(rows)
    print_tunings(tunings, wide_console())
    if out is not None:
        for written in write_tunings(tunings, out):
            typer.echo(f"wrote {written}", err=True)
    if write:
        save_gate_settings(model_dir, tunings)
        typer.echo(f"wrote max_edit_rate and gate to {model_dir / NEKO_JSON}", err=True)


def refuse_test_file(path: Path) -> None:
    """Tuning on test data would make its scores meaningless: a file named as a test split is refused."""
    stem = path.name.lower()
    if "test" in stem.replace("-", "_").split(".")[0].split("_") or stem.startswith("test"):
        raise NekoError(f"{path}: looks like a test file; tune on dev data only (test files are for scoring)")
