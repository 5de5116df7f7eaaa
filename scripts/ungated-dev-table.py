"""Per task and dev domain: the 1-best, and each model's ungated output (open valve, no gate) with how
many outputs equal the 1-best, read from the evidence files `neko tune-gate --evidence` wrote.

    .venv/bin/python scripts/ungated-dev-table.py reports/neko-small reports/neko-small-stage3

What a model has learnt before its gate decides what to keep: the gate closes a task when one dev
domain is made worse, and this table shows which one, and by how much.
"""

import argparse
from collections import defaultdict
from pathlib import Path

from neko.correct.tuning import domain
from neko.data.schema import Example
from neko.evaluate.metrics import Scorer, format_score
from neko.io import read_json_lines

EVIDENCE = Path("gate-tuning") / "evidence.jsonl"


def ungated(report: Path) -> dict[tuple[str, str], tuple[list[Example], list[str]]]:
    """(task, domain) -> the examples and the model's ungated outputs of one report's evidence file."""
    groups: dict[tuple[str, str], tuple[list[Example], list[str]]] = defaultdict(lambda: ([], []))
    for _, _, record in read_json_lines(report / EVIDENCE):
        if "example" not in record:  # the header line naming the model
            continue
        example = Example(**record["example"])
        examples, outputs = groups[(example.task, domain(example))]
        examples.append(example)
        outputs.append(record["evidence"]["output"])
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help=f"report folders holding {EVIDENCE}")
    args = parser.parse_args()
    scorer = Scorer(gleu_iterations=50, errant=False)
    per_report = [ungated(report) for report in args.reports]
    names = " | ".join(f"{report.name} (copies)" for report in args.reports)
    print(f"| task | dev domain | n | metric | 1-best | {names} |")
    print("|---|---|---:|---|---:|" + "---:|" * len(args.reports))
    for key in sorted(set().union(*per_report)):
        first = next(groups[key] for groups in per_report if key in groups)
        metric = scorer.headline(key[0])
        one_best = scorer.score(metric, first[0], [e.best_hypothesis for e in first[0]])
        cells = []
        for groups in per_report:
            if key not in groups:
                cells.append("")
                continue
            examples, outputs = groups[key]
            copies = sum(output == e.best_hypothesis for e, output in zip(examples, outputs, strict=True))
            cells.append(f"{format_score(scorer.score(metric, examples, outputs))} ({copies})")
        row = [*key, str(len(first[0])), metric, format_score(one_best), *cells]
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
