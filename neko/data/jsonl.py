"""The native format: one JSON example per line, plain (`.jsonl`) or gzip-compressed (`.jsonl.gz`)."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from neko.data.schema import Example
from neko.errors import NekoError


def open_text(path: str | Path, mode: str = "rt", compressed: bool | None = None) -> IO[str]:
    """Open a text file, gzip-compressed when its name ends in `.gz` (or when `compressed` says so)."""
    if compressed if compressed is not None else str(path).endswith(".gz"):
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_json_lines(path: str | Path) -> Iterator[tuple[str, int, Any]]:
    """(`file:line`, line number, decoded value) of each non-blank line; bad JSON is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise NekoError(f"{path}: no such file")
    with open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, number, json.loads(line)
            except json.JSONDecodeError as error:
                raise NekoError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None


def read_jsonl(path: str | Path) -> Iterator[Example]:
    """Examples of a JSONL file, validated line by line; errors name file:line and field."""
    for where, _, record in read_json_lines(path):
        yield Example.from_dict(record, where)


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples atomically: a reader never sees a half-written file. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    count = 0
    try:
        with open_text(temporary, "wt", compressed=str(path).endswith(".gz")) as out:
            for example in examples:
                out.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
