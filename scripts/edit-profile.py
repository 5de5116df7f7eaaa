"""What the errors of a text-correction corpus look like to ERRANT, files side by side: how many
sentences are unchanged, edits per sentence and per 100 source words, and the share of each ERRANT
edit type. Made to hold the synthetic TEC noise (`neko data build tec`) against real learner English:

    zcat data/tec/jfleg.jsonl.gz | head -377 | gzip > work/jfleg-dev-tune.jsonl.gz  # the gate's half
    PYTHONPATH=$PWD .venv/bin/python scripts/edit-profile.py data/tec/dev.jsonl.gz \
        work/jfleg-dev-tune.jsonl.gz --limit 400

Each example's first hypothesis is compared with its reference (for JFLEG: the first of its four
corrections), both tokenised by spaCy (JFLEG comes tokenised, neko's files do not: splitting on spaces
alone would hide every punctuation edit of neko's files). Reads any format neko reads. Never on a
test file to tune anything.
"""

from __future__ import annotations

import argparse
from collections import Counter

from neko.data.formats import read_examples
from neko.evaluate.errant_score import annotator


def profile(path: str, limit: int | None) -> tuple[dict[str, float], Counter[str]]:
    """Summary numbers of `path`'s first `limit` examples, and the count of each ERRANT edit type."""
    examples = read_examples(path)[:limit]
    errant = annotator()
    types: Counter[str] = Counter()
    unchanged = words = 0
    for example in examples:
        source = errant.parse(example.hypotheses[0], True)
        edits = errant.annotate(source, errant.parse(example.reference, True))
        unchanged += not edits
        words += len(source)
        types.update(edit.type for edit in edits)
    edits_total = sum(types.values())
    summary = {
        "examples": len(examples),
        "unchanged %": 100 * unchanged / len(examples),
        "source tokens": words / len(examples),
        "edits / sentence": edits_total / len(examples),
        "edits / 100 tokens": 100 * edits_total / max(words, 1),
    }
    return summary, types


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="+", help="data files (any format neko reads)")
    parser.add_argument("--limit", type=int, default=None, help="the first N examples of each file")
    parser.add_argument("--types", type=int, default=25, help="how many edit types to list")
    args = parser.parse_args()
    found = [profile(path, args.limit) for path in args.data]
    names = [path.rsplit("/", 1)[-1] for path in args.data]
    width = max(18, *(len(name) for name in names))
    print(f"{'':20}" + "".join(f"{name:>{width + 2}}" for name in names))
    for key in found[0][0]:
        print(f"{key:20}" + "".join(f"{summary[key]:>{width + 2}.2f}" for summary, _ in found))
    shares = [
        {kind: 100 * n / max(sum(types.values()), 1) for kind, n in types.items()} for _, types in found
    ]
    kinds = sorted(set().union(*shares), key=lambda kind: -sum(share.get(kind, 0) for share in shares))
    print(f"\nedit type, % of edits (the {args.types} most common over the files)")
    for kind in kinds[: args.types]:
        print(f"{kind:20}" + "".join(f"{share.get(kind, 0):>{width + 2}.1f}" for share in shares))


if __name__ == "__main__":
    main()
