"""No dev or test reference of any task is in any training file of any task (the committed data
files): what the gate is tuned on and what it is scored on were never trained on.

References are compared normalised (`neko.data.splits.normalize`: case, accents, spacing and
punctuation ignored), as sets, so the check reads each file once and stays fast.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest

from neko.data.splits import normalize

DATA = Path(__file__).resolve().parents[1] / "data"
TRAINING_FILES = sorted(DATA.glob("*/*train*.jsonl.gz"))
HELD_OUT_FILES = sorted(
    {*DATA.glob("*/*test*.jsonl.gz"), *DATA.glob("*/*dev*.jsonl.gz"), *DATA.glob("tec/jfleg.jsonl.gz")}
)


@cache
def reference_list(path: Path) -> tuple[str, ...]:
    """The normalised references of a data file, in order, repeats kept."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        records = (json.loads(line) for line in lines)
        return tuple(normalize(r["reference"]) for r in records if r.get("reference"))


@cache
def references(path: Path) -> frozenset[str]:
    return frozenset(reference_list(path))


@pytest.mark.skipif(not TRAINING_FILES or not HELD_OUT_FILES, reason="no committed data files")
@pytest.mark.parametrize("held_out_file", HELD_OUT_FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_no_dev_or_test_reference_in_any_training_file(held_out_file: Path):
    held_out = references(held_out_file)
    leaks = {str(t.relative_to(DATA)): len(held_out & references(t)) for t in TRAINING_FILES}
    assert {name: n for name, n in leaks.items() if n} == {}


FAITHFUL_TRANSLATION_FILES = sorted({*DATA.glob("st/handbook-*.jsonl.gz"), *DATA.glob("mt/*.jsonl.gz")})


@pytest.mark.skipif(not FAITHFUL_TRANSLATION_FILES, reason="no committed handbook translation files")
@pytest.mark.parametrize("path", FAITHFUL_TRANSLATION_FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_each_handbook_translation_pair_appears_once_in_its_split(path: Path):
    assert len(reference_list(path)) == len(references(path))
