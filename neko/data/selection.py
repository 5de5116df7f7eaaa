"""Which examples a command works on: data files whose examples all have references, ids unique over
the files, and the fixed subsets (the first N of each dataset) that quick evaluations score."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from neko.data.formats import read_examples
from neko.data.schema import Example, require_references
from neko.errors import NekoError


def load_scored_examples(
    paths: Sequence[str | Path], format: str | None = None, task: str | None = None, limit: int | None = None
) -> list[Example]:
    """The examples (the first `limit` of each file) of several data files, each with a reference, ids
    unique over all the files."""
    examples: list[Example] = []
    seen: dict[str, Path] = {}
    for path in map(Path, paths):
        loaded = read_examples(path, format=format, task=task)[:limit]
        require_references(loaded, "it cannot be scored", path)
        for example in loaded:
            if example.id in seen:
                raise NekoError(f"{path}: id {example.id!r} is also an example of {seen[example.id]}")
            seen[example.id] = path
        examples += loaded
    return examples


def first_per_dataset(examples: list[Example], limit: int) -> list[Example]:
    """The first `limit` examples of each task x dataset, in file order: a quick, fixed subset."""
    taken: Counter[tuple[str, str]] = Counter()
    kept = []
    for example in examples:
        key = (example.task, example.dataset)
        if taken[key] < limit:
            taken[key] += 1
            kept.append(example)
    return kept
