"""Train/dev/test split by source sentence, the same for every task.

A sentence's split depends only on a hash of its normalised English text (lowercase, insensitive to
whitespace, punctuation and accents), so a caption that lands in `test` is in `test` for ASR, ST, OCR
and TEC alike: no reference is in two splits, and no test sentence is in the training data of any
task that splits by it. Splits made otherwise (the HyPoradise files as published, the handbook pages
held out whole for zero-shot MT) say so in data/README.md. `check_disjoint` checks examples split
so; tests/test_splits_leak.py checks that no dev or test reference of the committed corpus is in any
training file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping

from neko.data.schema import Example
from neko.errors import NekoError
from neko.tasks import get_task

SPLITS = ("train", "dev", "test")
SOURCE_LANGUAGE = "en"
"""The language of the sentences every corpus is made from, and so of the split keys."""
# Per-mille shares of dev and test; the rest is train.
DEV_PER_MILLE = 50
TEST_PER_MILLE = 50
_SALT = b"neko-split-v1:"
_NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """The key a sentence is split and deduplicated by: lowercase letters and digits only."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub("", stripped)


def split_of(text: str) -> str:
    """`train`, `dev` or `test`: deterministic from the normalised text alone."""
    digest = hashlib.sha1(_SALT + normalize(text).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 1000
    if bucket < TEST_PER_MILLE:
        return "test"
    if bucket < TEST_PER_MILLE + DEV_PER_MILLE:
        return "dev"
    return "train"


def check_split_name(split: str) -> str:
    if split not in SPLITS:
        raise NekoError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def source_text(example: Example) -> str | None:
    """The English sentence an example was made from: its recorded source, or the reference of a task
    whose outputs are English (a translation's reference is not the source sentence)."""
    english = example.metadata.get("source_text")
    if isinstance(english, str):
        return english
    if get_task(example.task).language != SOURCE_LANGUAGE:
        return None
    return example.reference


def check_disjoint(examples_by_split: Mapping[str, Iterable[Example]]) -> list[str]:
    """Problems with a set of splits (empty when fine).

    `examples_by_split` maps a split name to examples of any tasks; names other than train/dev/test
    (such as `jfleg`) are external sets, checked for overlap only. Reported: an example whose source
    sentence hashes to another split than the one it is in, and a source sentence found in two splits.
    """
    problems: list[str] = []
    seen: dict[str, tuple[str, str]] = {}
    for split, examples in examples_by_split.items():
        for example in examples:
            english = source_text(example)
            if english is None:
                continue
            key = normalize(english)
            if split in SPLITS and split_of(english) != split:
                problems.append(
                    f"{example.id}: source sentence belongs to {split_of(english)}, found in {split}"
                )
            earlier = seen.get(key)
            if earlier is not None and earlier[0] != split:
                problems.append(
                    f"{example.id} ({split}) and {earlier[1]} ({earlier[0]}) share a source sentence"
                )
            else:
                seen.setdefault(key, (split, example.id))
    return problems
