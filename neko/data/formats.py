"""Read and write correction data in every format neko knows; the one entry point for data files.

`read_examples` turns a file (or `-`, standard input) into `Example`s and `write_examples` writes them
back. Everything else in neko works on `Example`s only.

Formats
-------
`jsonl` (native; `.jsonl`, `.jsonl.gz`)
    One `Example` JSON object per line (see `neko.data.schema`). Holds every field.

`hyporadise` (`.json`)
    HyPoradise, the N-best corpus of "HyPoradise: An Open Baseline for Generative Speech Recognition
    with Large Language Models" (NeurIPS 2023). A JSON list of records such as (HyPoradise-v0
    `test/test_atis.json`)::

        {"id": "i09067ss", "input": ["list all us air flights ...", ...], "output": "list all u s air ...",
         "am_score": [-0.32, -0.35, ...]}

    `input` (N-best, best first) -> `hypotheses`, `output` -> `reference`, `id` -> `id`. Every other key
    (`am_score`, `lm_score`, `data_source` in merged files, ...) goes to `metadata` unchanged. The
    translation variant `{"input1": [...N-best...], "input2": [...], "output": ...}` reads `input1` as
    the hypotheses and keeps `input2` (auxiliary N-best, e.g. of the source language) in
    `metadata["input2"]`; an example whose metadata has `input2` is written back in that variant.

`gensec` (`.json`)
    GenSEC challenge task 1 (post-ASR text correction, `GenSEC-LLM/SLT-Task1-Post-ASR-Text-Correction`):
    records with `hypothesis` (N-best list), `transcription` (the reference), `input1` (the 1-best,
    used by the challenge's no-LM baseline) and `source` (the corpus split, e.g. `test_chime4`).
    `hypothesis` -> `hypotheses` (a lone `input1` is used when `hypothesis` is absent),
    `transcription` -> `reference`, `source` -> `dataset`, `id` -> `id`; `input1` is dropped when it
    equals the best hypothesis (it is rewritten on output) and kept in metadata otherwise; other keys go
    to `metadata`.

    Both JSON formats are read from a JSON list (the HyPoradise files) or from JSON Lines, one record
    per line (what `datasets.Dataset.to_json` writes); they are written as a JSON list, or as JSON Lines
    when the file name ends in `.jsonl`/`.jsonl.gz`. Neither records the task: reading them needs
    `task=`. What neko knows beyond the original fields is written under the extra keys `task`,
    `dataset`, `language_pair` and `extra_references` (ignored by other tools), so a file neko wrote
    reads back whole, without `task=`.

`text` (`.txt`)
    One hypothesis per line, nothing else: raw recognizer output to correct. Blank lines make no
    example (`read_data` tells where they were, so a text output can keep them in place). Writing keeps
    only the best hypothesis of each example: ids, references, further hypotheses, `language_pair`,
    `extra_references` and `metadata` are lost, and the task and dataset come back from `task=` and
    `dataset=`.

Every file (and standard input, `-`) is read as strict UTF-8 with a leading byte-order mark dropped,
split into lines on "\n" only (see `neko.io`). A name that does not settle the format (`.json`, no
extension, standard input) is settled by the content: a JSON list or JSON Lines of one of the formats
above, else (when it does not start like JSON) plain text.

Ids, when a record has none, are `{stem}-{n}` where `stem` is the file name without its extensions and
`n` the line number (1-based; JSON Lines and text) or the position in a JSON list (0-based, as in the
error messages `file[n]`). Examples without a `dataset` get the file stem (`default` on standard input).
Every example must name a known task (built-in, or registered, e.g. by a model's `neko.json`), and ids
must be unique within a file. Errors are `NekoError`s naming `file:line` (or `file[index]` in a JSON
list) and the field.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neko.data.schema import Example
from neko.errors import NekoError
from neko.io import (
    BOM,
    check_writable,
    decode_text,
    json_line,
    parse_json,
    read_text,
    split_lines,
    write_text,
)
from neko.tasks import get_task

FORMATS = ("jsonl", "hyporadise", "gensec", "text")
STDIN = "-"

# Keys neko adds to the JSON formats so that what they cannot otherwise hold survives a round trip.
_NEKO_KEYS = ("task", "dataset", "language_pair", "extra_references")
_HYPORADISE_KEYS = ("id", "input", "input1", "input2", "output", *_NEKO_KEYS)
_GENSEC_KEYS = (
    "id",
    "hypothesis",
    "input1",
    "transcription",
    "source",
    "task",
    "language_pair",
    "extra_references",
)


@dataclass
class DataFile:
    """What `read_data` found: the examples, the format they were read in, and, for text, the line
    numbers (1-based) of the blank lines that made no example."""

    examples: list[Example]
    format: str
    blank_lines: list[int] = field(default_factory=list)


def read_examples(
    path: str | Path, format: str | None = None, task: str | None = None, dataset: str | None = None
) -> list[Example]:
    """Every example of a data file, validated.

    - `format`: one of `FORMATS`; detected from the file name and content when None.
    - `task`: the task of examples whose format does not record one (required for them). Given for a
      file whose examples carry a task, it must agree with them.
    - `dataset`: sets the dataset of every example (else the file's own, else the file stem).
    """
    return read_data(path, format, task, dataset).examples


def read_data(
    path: str | Path, format: str | None = None, task: str | None = None, dataset: str | None = None
) -> DataFile:
    """`read_examples`, also saying the format and (for text) where the blank lines were."""
    name = str(path)
    if format is not None:
        _check_format(format)
    if task is not None:
        get_task(task)  # an unknown task name fails here, with the list of known ones
    text = _read_input(name)
    format = format or detect_format(name, text)
    context = _Context(name, task, dataset)
    placed = list(_READERS[format](text, context))
    examples = [example for _, example in placed]
    check_unique_ids(placed)
    for where, example in placed:
        if example.task != task:
            _check_task(example.task, where)
    if dataset is not None:
        for example in examples:
            example.dataset = dataset
    return DataFile(examples, format, context.blank_lines)


def check_unique_ids(placed: Sequence[tuple[str, Example]]) -> None:
    """Refuse a second example with the same id (scores, oracles and predictions are keyed by id);
    `placed` pairs each example with where it was read (`file:line`)."""
    first: dict[str, str] = {}
    for where, example in placed:
        if example.id in first:
            raise NekoError(f"{where}: id {example.id!r} is used twice (first at {first[example.id]})")
        first[example.id] = where


def write_examples(path: str | Path, examples: Iterable[Example], format: str | None = None) -> int:
    """Write examples in `format` (from the file name when None; `-` is standard output, native JSONL by
    default). Files are replaced atomically. Returns the number of examples written."""
    name = str(path)
    format = writing_format(name, format)
    if name != STDIN:
        check_writable(name)
    examples = list(examples)
    text = _WRITERS[format](examples, name)
    if name == STDIN:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(name, text)
    return len(examples)


def writing_format(path: str | Path, format: str | None = None) -> str:
    """The format `write_examples` writes `path` in: `format`, else the one its name says."""
    if format is None:
        format = _format_from_name(str(path), for_writing=True)
    _check_format(format)
    return format


def left_out_by_text(examples: Sequence[Example]) -> str | None:
    """What the text format, one 1-best per line, cannot keep of `examples` (None: nothing)."""
    hypotheses = sum(len(e.hypotheses) - 1 for e in examples)
    references = sum(len(e.references) for e in examples)
    if not hypotheses and not references:
        return None
    return f"{hypotheses} further hypotheses and {references} references"


def detect_format(path: str | Path, text: str | None = None) -> str:
    """The format of a data file (or of standard input, `-`), from its name and, where the name is not
    enough, its content."""
    name = str(path)
    by_name = _format_from_name(name, for_writing=False)
    if by_name == "text":
        return "text"
    if text is None:
        text = _read_input(name)
    stripped = text.lstrip()
    if not stripped:
        if by_name is not None:
            return by_name
        raise NekoError(f"{name}: the file is empty; cannot tell its format (pass --format)")
    if by_name is None and not stripped.startswith(("[", "{")):
        return "text"
    record = _first_record(name, stripped)
    if isinstance(record, dict):
        if "hypotheses" in record:
            if stripped.startswith("["):
                raise NekoError(f"{name}: a JSON list of neko examples; the native format has one per line")
            return "jsonl"
        if "hypothesis" in record or "transcription" in record:
            return "gensec"
        if "input" in record or "input1" in record or "output" in record:
            return "hyporadise"
    if by_name == "jsonl":
        return "jsonl"  # let the native reader name what is wrong
    raise NekoError(
        f"{name}: cannot tell the format from the content; pass --format (one of {', '.join(FORMATS)})"
    )


# ---------------------------------------------------------------------------------------------------
# Reading


class _Context:
    """What a reader needs besides the text: where it is, and the caller's task and dataset."""

    def __init__(self, name: str, task: str | None, dataset: str | None) -> None:
        self.name = name
        self.task = task
        self.stem = "stdin" if name == STDIN else _stem(name)
        self.default_dataset = dataset or ("default" if name == STDIN else self.stem)
        self.blank_lines: list[int] = []

    def task_for(self, record_task: Any, where: str, format: str) -> str:
        if record_task is None:
            if self.task is None:
                raise NekoError(f"{where}: the {format} format does not record the task; pass --task")
            return self.task
        if not isinstance(record_task, str):
            raise NekoError(f"{where}: field 'task' must be a string, got {type(record_task).__name__}")
        if self.task is not None and record_task != self.task:
            raise NekoError(f"{where}: field 'task' is {record_task!r} but task {self.task!r} was given")
        return record_task


Placed = tuple[str, Example]
"""An example and where it was read (`file:line` or `file[index]`)."""


def _read_jsonl(text: str, context: _Context) -> Iterator[Placed]:
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        where = f"{context.name}:{number}"
        example = Example.from_dict(parse_json(line, where), where)
        context.task_for(example.task, where, "jsonl")
        yield where, example


def _read_input(name: str) -> str:
    """The text of a data file or of standard input: strict UTF-8, byte-order mark dropped."""
    if name != STDIN:
        return read_text(name)
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # a text stream put in place of standard input (tests, notebooks)
        return sys.stdin.read().removeprefix(BOM)
    return decode_text(binary.read(), "<stdin>")


def _read_plain_text(text: str, context: _Context) -> Iterator[Placed]:
    if context.task is None:
        raise NekoError(f"{context.name}: the text format does not record the task; pass --task")
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            context.blank_lines.append(number)
            continue
        where = f"{context.name}:{number}"
        record = {"id": f"{context.stem}-{number}", "task": context.task, "hypotheses": [line]}
        record["dataset"] = context.default_dataset
        yield where, Example.from_dict(record, where)


def _json_records(text: str, context: _Context) -> Iterator[tuple[str, int, Any]]:
    """(where, number, record) for a JSON list or JSON Lines; `number` makes default ids."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = parse_json(text, context.name)
        if not isinstance(records, list):
            raise NekoError(f"{context.name}: expected a JSON list of records")
        for index, record in enumerate(records):
            yield f"{context.name}[{index}]", index, record
        return
    for number, line in enumerate(split_lines(text), start=1):
        if line.strip():
            where = f"{context.name}:{number}"
            yield where, number, parse_json(line, where)


@dataclass(frozen=True)
class _Fields:
    """What a record of a JSON format says beyond its id and neko's extra keys."""

    hypotheses: list[str]
    reference: str | None
    dataset: Any
    metadata: dict[str, Any]


def _json_reader(
    format: str, fields: Callable[[dict[str, Any], str], _Fields]
) -> Callable[[str, _Context], Iterator[Placed]]:
    """The reader of a JSON format whose records `fields` maps to the fields of an `Example`."""

    def read(text: str, context: _Context) -> Iterator[Placed]:
        for where, number, record in _json_records(text, context):
            record = _expect_object(record, where)
            yield where, _build(record, where, number, context, format, fields(record, where))

    return read


def _hyporadise_fields(record: dict[str, Any], where: str) -> _Fields:
    hypotheses, used = _nbest(record, "input", where)
    reserved = {*_HYPORADISE_KEYS} - {"input1", "input2"} | {used}
    return _Fields(
        hypotheses=hypotheses,
        reference=_optional_string(record, "output", where),
        dataset=record.get("dataset"),
        metadata={key: value for key, value in record.items() if key not in reserved},
    )


def _gensec_fields(record: dict[str, Any], where: str) -> _Fields:
    hypotheses, _ = _nbest(record, "hypothesis", where)
    metadata = {key: value for key, value in record.items() if key not in _GENSEC_KEYS}
    if "input1" in record and "hypothesis" in record and record["input1"] != hypotheses[0]:
        metadata["input1"] = record["input1"]
    dataset = _optional_string(record, "source", where)
    return _Fields(
        hypotheses=hypotheses,
        reference=_optional_string(record, "transcription", where),
        dataset=dataset,
        metadata=metadata,
    )


def _nbest(record: dict[str, Any], key: str, where: str) -> tuple[list[str], str]:
    """The N-best list under `key`, else under `input1` (a lone 1-best), and the key it was under."""
    for used in (key, "input1"):
        if used in record:
            return _string_list(record, used, where), used
    raise NekoError(f"{where}: missing field '{key}' (the N-best hypotheses)")


def _build(
    record: dict[str, Any], where: str, number: int, context: _Context, format: str, fields: _Fields
) -> Example:
    identifier = record.get("id")
    if identifier is None:
        identifier = f"{context.stem}-{number}"
    elif isinstance(identifier, int) and not isinstance(identifier, bool):
        identifier = str(identifier)
    native: dict[str, Any] = {
        "id": identifier,
        "task": context.task_for(record.get("task"), where, format),
        "hypotheses": fields.hypotheses,
        "reference": fields.reference,
        "dataset": context.default_dataset if fields.dataset is None else fields.dataset,
        "metadata": fields.metadata,
    }
    for key in ("language_pair", "extra_references"):
        if record.get(key) is not None:
            native[key] = record[key]
    return Example.from_dict(native, where)


def _check_task(name: str, where: str) -> None:
    try:
        get_task(name)
    except NekoError as error:
        raise NekoError(f"{where}: {error}") from None


def _expect_object(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise NekoError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _string_list(record: dict[str, Any], key: str, where: str) -> list[str]:
    """An N-best list; a lone string counts as a one-best list."""
    value = record[key]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise NekoError(f"{where}: field '{key}' must be a list of strings")
    if not value:
        raise NekoError(f"{where}: field '{key}' is empty; an example needs at least one hypothesis")
    return value


def _optional_string(record: dict[str, Any], key: str, where: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise NekoError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------------
# Writing


def _write_native(examples: list[Example], name: str) -> str:
    return "".join(json_line(e.to_dict()) for e in examples)


def _write_plain_text(examples: list[Example], name: str) -> str:
    lines = []
    for example in examples:
        best = example.best_hypothesis
        if not best.strip() or "\n" in best or best.endswith("\r") or best.startswith(BOM):
            raise NekoError(
                f"example {example.id}: its best hypothesis {best!r} cannot be written as one line "
                f"of a text file"
            )
        lines.append(best + "\n")
    return "".join(lines)


def _neko_extras(example: Example) -> dict[str, Any]:
    extras: dict[str, Any] = {"task": example.task}
    if example.language_pair is not None:
        extras["language_pair"] = example.language_pair
    if example.extra_references:
        extras["extra_references"] = list(example.extra_references)
    return extras


def _merge_metadata(
    record: dict[str, Any], metadata: dict[str, Any], example: Example, reserved: tuple[str, ...], format: str
) -> None:
    for key, value in metadata.items():
        if key in reserved or key in record:
            raise NekoError(
                f"example {example.id}: metadata key '{key}' clashes with a field of the {format} format"
            )
        record[key] = value


def _hyporadise_record(example: Example) -> dict[str, Any]:
    record: dict[str, Any] = {"id": example.id}
    metadata = dict(example.metadata)
    if "input2" in metadata:
        record["input1"] = list(example.hypotheses)
        record["input2"] = metadata.pop("input2")
    else:
        record["input"] = list(example.hypotheses)
    if example.reference is not None:
        record["output"] = example.reference
    _merge_metadata(record, metadata, example, ("input", "output", *_NEKO_KEYS), "hyporadise")
    record.update(_neko_extras(example))
    record["dataset"] = example.dataset
    return record


def _gensec_record(example: Example) -> dict[str, Any]:
    metadata = dict(example.metadata)
    record: dict[str, Any] = {
        "id": example.id,
        "hypothesis": list(example.hypotheses),
        "input1": metadata.pop("input1", example.hypotheses[0]),
    }
    if example.reference is not None:
        record["transcription"] = example.reference
    record["source"] = example.dataset
    _merge_metadata(record, metadata, example, _GENSEC_KEYS, "gensec")
    record.update(_neko_extras(example))
    return record


def _json_writer(make_record: Callable[[Example], dict[str, Any]]) -> Callable[[list[Example], str], str]:
    def write(examples: list[Example], name: str) -> str:
        records = [make_record(example) for example in examples]
        lines = [json_line(record) for record in records]
        if _is_jsonl_name(name):
            return "".join(lines)
        if not records:
            return "[]\n"
        return "[\n" + ",\n".join(line.removesuffix("\n") for line in lines) + "\n]\n"

    return write


# ---------------------------------------------------------------------------------------------------
# Names and detection


_READERS: dict[str, Callable[[str, _Context], Iterator[Placed]]] = {
    "jsonl": _read_jsonl,
    "hyporadise": _json_reader("hyporadise", _hyporadise_fields),
    "gensec": _json_reader("gensec", _gensec_fields),
    "text": _read_plain_text,
}
_WRITERS: dict[str, Callable[[list[Example], str], str]] = {
    "jsonl": _write_native,
    "hyporadise": _json_writer(_hyporadise_record),
    "gensec": _json_writer(_gensec_record),
    "text": _write_plain_text,
}


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise NekoError(f"unknown format {format!r}; known formats: {', '.join(FORMATS)}")


def _is_jsonl_name(name: str) -> bool:
    return name.endswith((".jsonl", ".jsonl.gz"))


def _format_from_name(name: str, for_writing: bool) -> str | None:
    """`jsonl` or `text` when the name settles it; None when the content must (`.json`, no extension,
    standard input)."""
    if name == STDIN:
        return "jsonl" if for_writing else None
    lowered = name.lower()
    if _is_jsonl_name(lowered):
        return "jsonl"
    if lowered.endswith((".txt", ".txt.gz")):
        return "text"
    if for_writing:
        raise NekoError(
            f"{name}: cannot tell the format to write from the file name; pass --to "
            f"(one of {', '.join(FORMATS)})"
        )
    return None


def _first_record(name: str, stripped: str) -> Any:
    """The first record of a JSON list or JSON Lines text, for detection; None when unreadable."""
    if stripped.startswith("["):
        # Decode only the first element: a HyPoradise training file is hundreds of megabytes.
        start = len(stripped) - len(stripped[1:].lstrip())
        try:
            record, _ = json.JSONDecoder().raw_decode(stripped, start)
        except (ValueError, RecursionError):  # bad JSON, a huge number, deep nesting
            return None
        return record
    first_line = stripped.split("\n", 1)[0]
    try:
        return parse_json(first_line, name)
    except NekoError:
        return None


def _stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".gz", ".jsonl", ".json", ".txt"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
    return base
