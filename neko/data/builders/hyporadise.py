"""HyPoradise (real 5-best lists of strong modern recognizers) in neko's corpus.

The public HyPoradise v0 files are read with neko's HyPoradise adapter and written as three files:

- `hyporadise-train.jsonl.gz`: `train_atis.json` less the dev split, and less every example whose
  reference is also a reference of a test file (ATIS repeats queries; training on them would be
  training on test sentences);
- `hyporadise-dev.jsonl.gz`: the part of `train_atis.json` whose normalised reference falls in the
  corpus' dev or test hash buckets (`neko.data.splits.split_of`, about 10%): the only HyPoradise data
  to tune on;
- `hyporadise-test.jsonl.gz`: the official test files as they are (`hyporadise/atis`, `hyporadise/wsj`,
  `hyporadise/chime4`), for evaluation only. WSJ and CHiME-4 are a domain neko never trains on
  (`metadata.zero_shot`).

References stay as published (HyPoradise's own spelling: "u s air", "re structuring").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from neko.data.formats import read_examples
from neko.data.jsonl import write_jsonl
from neko.data.schema import Example
from neko.data.splits import normalize, split_of
from neko.errors import NekoError

TRAIN_FILE = "train_atis.json"
TEST_FILES = {"atis": "test_atis.json", "wsj": "test_wsj_score.json", "chime4": "test_chime4.json"}
ZERO_SHOT = {"wsj", "chime4"}


def read_file(folder: Path, file: str, name: str, split: str) -> list[Example]:
    """One HyPoradise file as `asr` examples of dataset `hyporadise/NAME`, with ids made unique."""
    path = folder / file
    if not path.exists():
        raise NekoError(f"{path}: no such file; the HyPoradise v0 files belong in {folder}")
    examples = read_examples(path, format="hyporadise", task="asr", dataset=f"hyporadise/{name}")
    return [
        replace(
            example,
            id=f"hyporadise-{name}-{split}-{index}",
            metadata={**example.metadata, "source_id": example.id, "zero_shot": name in ZERO_SHOT},
        )
        for index, example in enumerate(examples)
    ]


def split_train(train: Iterable[Example], test_references: set[str]) -> tuple[list[Example], list[Example]]:
    """(train, dev) of `train_atis`: dev by hash of the reference; neither holds a test reference (the
    gate is tuned on dev, so a test sentence there would be tuned on)."""
    kept, dev = [], []
    for example in train:
        if normalize(example.reference or "") in test_references:
            continue
        (kept if split_of(example.reference or "") == "train" else dev).append(example)
    return kept, dev


def build(folder: Path, out_dir: Path) -> dict[str, int]:
    """Write the three files into `out_dir`; the number of examples of each."""
    tests = [ex for name, file in TEST_FILES.items() for ex in read_file(folder, file, name, "test")]
    test_references = {normalize(example.reference or "") for example in tests}
    train, dev = split_train(read_file(folder, TRAIN_FILE, "atis", "train"), test_references)
    counts = {}
    for split, examples in (("train", train), ("dev", dev), ("test", tests)):
        path = out_dir / f"hyporadise-{split}.jsonl.gz"
        counts[str(path)] = write_jsonl(path, examples)
    return counts
