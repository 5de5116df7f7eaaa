"""The JSON of `POST /v1/correct`: request models (they make the OpenAPI schema), the limits on them,
and their conversion to `Example`s with one-line errors that name the input and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from neko.correct.gate import DECISIONS
from neko.data.formats import check_unique_ids
from neko.data.schema import Example
from neko.errors import NekoError
from neko.schema import dotted
from neko.tasks import check_no_marker


@dataclass(frozen=True)
class Limits:
    """What one request may hold; beyond them the server answers 413 (body) or 422 (the rest)."""

    max_body_bytes: int = 1 << 20
    max_inputs: int = 64
    max_hypotheses: int = 32
    max_hypothesis_chars: int = 2000


class InputError(Exception):
    """A request the model cannot take; the message names the input and field."""


class InputObject(BaseModel):
    """One input as in neko's JSONL: hypotheses best first, with an optional id and task."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = Field(None, description="echoed in the correction; default: the input's index")
    task: str | None = Field(None, description="this input's task; default: the request's")
    hypotheses: list[str] = Field(min_length=1, description="the recognizer's N-best list, best first")


def _as_object(value: Any) -> Any:
    """A plain string is a 1-best, a list an N-best list; objects pass through to validation."""
    if isinstance(value, str):
        return {"hypotheses": [value]}
    if isinstance(value, list):
        return {"hypotheses": value}
    if isinstance(value, dict):
        return value
    raise ValueError(
        f"expected a string, a list of hypotheses or an object with 'hypotheses', got {type(value).__name__}"
    )


Input = Annotated[
    InputObject,
    BeforeValidator(_as_object),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "a single hypothesis"},
                {"type": "array", "items": {"type": "string"}, "description": "an N-best list, best first"},
                {"$ref": "#/components/schemas/InputObject"},
            ]
        }
    ),
]


class CorrectRequest(BaseModel):
    """Inputs to correct; `task` applies to every input that does not name its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"task": "asr", "inputs": [["helo world", "hello word"], "the cat sad"]}]
        },
    )

    task: str | None = Field(None, description="the task of inputs without one, e.g. asr, st, ocr, tec")
    inputs: list[Input] = Field(min_length=1)


class CorrectionOut(BaseModel):
    """One correction: the fields of `neko.correct.Correction` (more may appear as it grows)."""

    model_config = ConfigDict(extra="allow")

    id: str
    task: str
    text: str = Field(description="what to use: the correction, or the 1-best where the gate kept it")
    decision: str = Field(
        description="what `text` is: the model's output (model; unchanged when that is the 1-best), the "
        "hypothesis the model ranks first (rerank) or the 1-best the gate kept (1-best)",
        json_schema_extra={"enum": list(DECISIONS)},
    )
    fell_back: bool = Field(description="true for the decisions rerank and 1-best")
    reason: str | None = Field(None, description="why the model's output was not taken")
    output: str = Field("", description="the model's own output")


class CorrectResponse(BaseModel):
    corrections: list[CorrectionOut]
    model: str


class ErrorResponse(BaseModel):
    error: str = Field(description="one line naming the input and field")


def to_examples(request: CorrectRequest, tasks: Sequence[str], limits: Limits) -> list[Example]:
    """The request's inputs as `Example`s (ids default to the input's index), within `limits`."""
    if len(request.inputs) > limits.max_inputs:
        raise InputError(
            f"inputs: {len(request.inputs)} inputs, the limit is {limits.max_inputs} per request"
        )
    if request.task is not None:
        _check_task(request.task, tasks, "task")
    examples = []
    for index, item in enumerate(request.inputs):
        where = f"inputs[{index}]"
        task = item.task or request.task
        if task is None:
            raise InputError(f"{where}.task: missing; name it in the input or for the whole request")
        if item.task is not None:
            _check_task(item.task, tasks, f"{where}.task")
        if len(item.hypotheses) > limits.max_hypotheses:
            raise InputError(
                f"{where}.hypotheses: {len(item.hypotheses)} hypotheses, the limit is {limits.max_hypotheses}"
            )
        for rank, hypothesis in enumerate(item.hypotheses):
            if len(hypothesis) > limits.max_hypothesis_chars:
                raise InputError(
                    f"{where}.hypotheses[{rank}]: {len(hypothesis)} characters, "
                    f"the limit is {limits.max_hypothesis_chars}"
                )
            _check_text(hypothesis, f"{where}.hypotheses[{rank}]")
        examples.append(Example(item.id if item.id is not None else str(index), task, list(item.hypotheses)))
    try:  # answers are matched to inputs by id, as everywhere in neko: one id per input
        check_unique_ids([(f"inputs[{index}]", example) for index, example in enumerate(examples)])
    except NekoError as error:
        raise InputError(str(error)) from None
    return examples


def _check_text(text: str, where: str) -> None:
    """Text the tokenizer can take: UTF-8 (JSON's escapes can write a lone surrogate) and no markers."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"{where}: holds a lone surrogate (U+{ord(text[error.start]):04X}), not text"
        ) from None
    try:
        check_no_marker(text, where)
    except NekoError as error:
        raise InputError(str(error)) from None


def _check_task(task: str, tasks: Sequence[str], where: str) -> None:
    if task not in tasks:
        raise InputError(f"{where}: unknown task {task!r}; the model knows {', '.join(tasks)}")


def describe_validation_error(errors: Sequence[dict]) -> str:
    """FastAPI's validation errors as one line naming the first bad field, e.g.
    `inputs[2].hypotheses[0]: Input should be a valid string`."""
    error = errors[0]
    location = [part for part in error.get("loc", ()) if part != "body"]
    if error.get("type") == "json_invalid":
        return f"request body: invalid JSON ({error.get('ctx', {}).get('error', 'cannot be decoded')})"
    if not location:
        if error.get("type") == "missing":
            return 'request body: missing; expected {"task": ..., "inputs": [...]}'
        if error.get("type") == "model_attributes_type":
            return "request body: expected a JSON object (sent as Content-Type: application/json)"
        return f"request body: {error.get('msg', 'invalid')}"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{dotted(location)}: {message}"
