"""The correction example: one schema for every task, format, builder, trainer and metric.

An example is what a recognizer produced for one input (its hypotheses, best first) and, when known,
what it should have produced (the reference). Formats (HyPoradise, GenSEC, plain text) are adapters
that read into and write out of this schema; nothing else in neko knows about them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neko.errors import NekoError
from neko.tasks import check_no_marker

REQUIRED_FIELDS = ("id", "task", "hypotheses")


@dataclass
class Example:
    """One input to correct.

    - `hypotheses`: the recognizer's outputs, best first; one is allowed (OCR, TEC).
    - `reference`: the correct output; absent at inference.
    - `extra_references`: further correct outputs, for multi-reference metrics (JFLEG has four).
    - `dataset`: where the example comes from, e.g. `captions/flite-slt/noise`; evaluation tables are
      per dataset.
    - `language_pair`: `en-es` for speech and machine translation into Spanish, else None.
    - `metadata`: how it was made (voice, condition, font, degradation, recognizer scores, source
      text id, the MT of the clean source, ...). Free-form, carried through untouched.
    """

    id: str
    task: str
    hypotheses: list[str]
    reference: str | None = None
    extra_references: list[str] = field(default_factory=list)
    dataset: str = "default"
    language_pair: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> list[str]:
        """All correct outputs, the main one first; empty at inference."""
        return [] if self.reference is None else [self.reference, *self.extra_references]

    @property
    def best_hypothesis(self) -> str:
        return self.hypotheses[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the native JSONL format; empty optional fields are left out."""
        record = asdict(self)
        for key in ("reference", "language_pair"):
            if record[key] is None:
                del record[key]
        for key in ("extra_references", "metadata"):
            if not record[key]:
                del record[key]
        return record

    @classmethod
    def from_dict(cls, record: Any, where: str = "<input>") -> Example:
        """Validate a decoded JSON object; errors name `where` (file:line) and the field."""
        if not isinstance(record, dict):
            raise NekoError(f"{where}: expected a JSON object, got {type(record).__name__}")
        for name in REQUIRED_FIELDS:
            if name not in record:
                raise NekoError(f"{where}: missing field '{name}'")
        unknown = set(record) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise NekoError(f"{where}: unknown field '{sorted(unknown)[0]}'")
        _expect_string(record, "id", where)
        _expect_string(record, "task", where)
        hypotheses = record["hypotheses"]
        if not isinstance(hypotheses, list) or not all(isinstance(h, str) for h in hypotheses):
            raise NekoError(f"{where}: field 'hypotheses' must be a list of strings")
        if not hypotheses:
            raise NekoError(f"{where}: field 'hypotheses' is empty; an example needs at least one")
        for name in ("reference", "language_pair"):
            if record.get(name) is not None:
                _expect_string(record, name, where)
        if "dataset" in record:
            _expect_string(record, "dataset", where)
        extra = record.get("extra_references", [])
        if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
            raise NekoError(f"{where}: field 'extra_references' must be a list of strings")
        if not isinstance(record.get("metadata", {}), dict):
            raise NekoError(f"{where}: field 'metadata' must be a JSON object")
        for rank, hypothesis in enumerate(hypotheses):
            check_no_marker(hypothesis, f"{where}: field 'hypotheses[{rank}]'")
        for rank, reference in enumerate([record.get("reference") or "", *extra]):
            name = "reference" if rank == 0 else f"extra_references[{rank - 1}]"
            check_no_marker(reference, f"{where}: field '{name}'")
        return cls(**record)


def require_references(examples: Iterable[Example], why: str, source: str | Path | None = None) -> None:
    """A one-line error naming the first example without a reference (and its file): scoring,
    tuning and training need the correct output, which inference input may leave out."""
    for example in examples:
        if example.reference is None:
            where = "" if source is None else f"{source}: "
            raise NekoError(f"{where}example {example.id!r} has no reference; {why}")


def _expect_string(record: dict[str, Any], name: str, where: str) -> None:
    if not isinstance(record[name], str):
        raise NekoError(f"{where}: field '{name}' must be a string, got {type(record[name]).__name__}")
