"""Pick the bundled demo examples: 3 per task, drawn at random (seed 0) from the committed test splits
(and JFLEG dev for tec), not chosen by hand.

    .venv/bin/python scripts/make-demo-examples.py
"""

import random

from neko.data.formats import read_examples, write_examples

SOURCES = {
    "asr": "data/asr/test.jsonl.gz",
    "st": "data/st/handbook-test.jsonl.gz",
    "ocr": "data/ocr/test.jsonl.gz",
    "tec": "data/tec/jfleg.jsonl.gz",
    "mt": "data/mt/test.jsonl.gz",
}

picked = []
for path in SOURCES.values():
    examples = read_examples(path)
    picked += random.Random(0).sample(examples, 3)
write_examples("examples/demo.jsonl", picked)
print(f"wrote {len(picked)} examples to examples/demo.jsonl")
