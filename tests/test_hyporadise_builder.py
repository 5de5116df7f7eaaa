"""`neko data build hyporadise`: a dev split off train_atis, the official tests as they are, and no
training example whose reference is a test reference."""

from __future__ import annotations

import json

from neko.data.builders.hyporadise import TEST_FILES, TRAIN_FILE, build
from neko.data.jsonl import read_jsonl
from neko.data.splits import normalize, split_of


def record(i: int, reference: str) -> dict:
    return {
        "id": f"r{i}",
        "input": [reference.replace("flights", "flight"), reference],
        "output": reference,
        "am_score": [-0.5, -0.6],
    }


def test_train_dev_and_test_files(tmp_path):
    folder = tmp_path / "hyporadise"
    folder.mkdir()
    references = [f"show me flights from city {i} to city {i + 1}" for i in range(60)]
    tests = {name: [record(i, f"{name} sentence {i}") for i in range(3)] for name in TEST_FILES}
    dev_reference = next(r for r in references if split_of(r) != "train")
    tests["atis"] += [
        record(99, references[0]),
        record(98, dev_reference),
    ]  # test references train_atis repeats
    (folder / TRAIN_FILE).write_text(json.dumps([record(i, r) for i, r in enumerate(references)]))
    for name, file in TEST_FILES.items():
        (folder / file).write_text(json.dumps(tests[name]))
    counts = build(folder, tmp_path / "out")
    train, dev, test = (
        list(read_jsonl(tmp_path / "out" / f"hyporadise-{s}.jsonl.gz")) for s in ("train", "dev", "test")
    )
    assert sorted(counts.values()) == sorted([len(train), len(dev), len(test)])
    assert len(test) == 11 and {e.dataset for e in test} == {f"hyporadise/{n}" for n in TEST_FILES}
    assert {e.dataset: e.metadata["zero_shot"] for e in test} == {
        "hyporadise/atis": False,
        "hyporadise/wsj": True,
        "hyporadise/chime4": True,
    }
    assert all(split_of(e.reference) != "train" for e in dev)
    assert all(split_of(e.reference) == "train" for e in train)
    test_references = {normalize(e.reference) for e in test}
    assert not test_references & {normalize(e.reference) for e in train + dev}
    assert len(train) + len(dev) == len(references) - len({references[0], dev_reference})
    assert all(e.task == "asr" and e.metadata["source_id"].startswith("r") for e in train + dev + test)
    assert len({e.id for e in train + dev + test}) == len(train + dev + test)
