"""Regroup examples for tables: by the full dataset name, a prefix of it, or a metadata field.

Dataset names are paths such as `captions/flite-slt/noise` (source / voice / condition). A full
table of every combination has many small rows; `dataset:1` groups by source, `metadata:voice` by
voice, `metadata:zero_shot` compares held-out (zero-shot) data with data like the training data.
"""

from __future__ import annotations

from dataclasses import replace

from neko.data.schema import Example
from neko.errors import NekoError

GROUP_BY_HELP = "dataset (default), dataset:N (first N parts of its name) or metadata:KEY"


def group_examples(examples: list[Example], group_by: str = "dataset") -> list[Example]:
    """The examples with `dataset` replaced by their group under `group_by`."""
    kind, _, argument = group_by.partition(":")
    if group_by == "dataset":
        return examples
    if kind == "dataset" and argument.isdigit() and int(argument) > 0:
        depth = int(argument)
        return [replace(e, dataset="/".join(e.dataset.split("/")[:depth])) for e in examples]
    if kind == "metadata" and argument:
        return [replace(e, dataset=f"{argument}={e.metadata.get(argument, '-')}") for e in examples]
    raise NekoError(f"--group-by {group_by!r}: expected {GROUP_BY_HELP}")
