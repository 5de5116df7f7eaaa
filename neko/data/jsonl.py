"""The native format: one JSON example per line, plain (`.jsonl`) or gzip-compressed (`.jsonl.gz`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from neko.data.schema import Example
from neko.io import read_json_lines, write_json_lines


def read_jsonl(path: str | Path) -> Iterator[Example]:
    """Examples of a JSONL file, validated line by line; errors name file:line and field."""
    for where, _, record in read_json_lines(path):
        yield Example.from_dict(record, where)


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples atomically: a reader never sees a half-written file. Returns the count."""
    return write_json_lines(path, (example.to_dict() for example in examples))
