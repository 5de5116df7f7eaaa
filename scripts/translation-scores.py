"""BLEU and chrF of translation data files per dataset: 1-best, N-best oracle, and (ST) apertium's
translation of the clean English (`metadata.mt_of_clean_source`, the cascade's ceiling).

Usage: PYTHONPATH=$PWD python scripts/translation-scores.py data/st/handbook-test.jsonl.gz ...
"""

from __future__ import annotations

import sys

from neko.data.formats import read_examples
from neko.evaluate.metrics import Scorer
from neko.evaluate.oracles import task_oracle_outputs

METRICS = ("bleu", "chrf")


def main(paths: list[str]) -> None:
    scorer = Scorer(errant=False)
    print("| file | dataset | n | BLEU 1-best / oracle / clean | chrF 1-best / oracle / clean |")
    print("|---|---|---:|---|---|")
    for path in paths:
        examples = [e for e in read_examples(path) if e.reference is not None]
        oracle = task_oracle_outputs(examples, scorer)
        groups: dict[str, list] = {}
        for example in examples:
            groups.setdefault(example.dataset.split("/")[0], []).append(example)
        for dataset, group in [*sorted(groups.items()), ("(all)", examples)]:
            outputs = {
                "1-best": [e.best_hypothesis for e in group],
                "oracle": [oracle[e.id] for e in group],
                "clean": [e.metadata.get("mt_of_clean_source", e.best_hypothesis) for e in group],
            }
            cells = [
                " / ".join(f"{scorer.score(m, group, o):.2f}" for o in outputs.values()) for m in METRICS
            ]
            print(f"| `{path}` | {dataset} | {len(group)} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(sys.argv[1:])
