"""Oracles of an N-best list: how well a perfect selector or a perfect composer could do.

HyPoradise (Chen et al., "HyPoradise: An Open Baseline for Generative Speech Recognition with Large
Language Models", NeurIPS 2023, Sec. 5 and Table 3) reports two oracle WERs next to its correction
results:

- `o_nb`, the N-best oracle: "the WER of the best candidate in the N-best hypotheses list", the upper
  bound of any re-ranking method. Here: per example, the hypothesis with the fewest errors against the
  reference; the corpus score of those choices. Errors are the edits the task's metric names
  (`Metric.oracle_unit`: words, or characters for CER), counted after the task's normaliser, against
  the main reference or, for multi-reference metrics (BLEU, GLEU), the closest reference (an
  edit-distance oracle, not a BLEU-maximising one). Ties go to the earlier (better-ranked) hypothesis.
- `o_cp`, the compositional oracle: "the achievable WER using all tokens in the N-best hypotheses
  list", the upper bound of a corrector that only recombines words it was shown. The paper gives no
  algorithm; neko computes the bound that definition implies for an output built from words occurring
  anywhere in the N-best list, in any order and number: every reference word that occurs in some
  hypothesis costs nothing, every other reference word costs exactly one error (a substitution, or a
  deletion: no output built from the list can match it), and no insertion is needed. So
  o_cp = (reference words absent from all hypotheses) / (reference words), corpus-level, after the
  task's normaliser. It is never above o_nb. Reported, as a WER, for tasks whose metric asks for it
  (`Metric.compositional_oracle`: WER).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from neko.data.schema import Example, require_references
from neko.errors import NekoError
from neko.evaluate.metrics import Scorer, edit_counts


def nbest_oracle_outputs(
    examples: Sequence[Example],
    normalize: Callable[[str], str],
    unit: str = "word",
    all_references: bool = False,
) -> dict[str, str]:
    """Per example id, its hypothesis with the fewest edits (the raw text, not normalised).

    `all_references`: measure against the closest of all references instead of the main one.
    """
    pairs: list[tuple[int, int, int]] = []  # (example index, hypothesis index, reference index)
    refs: list[str] = []
    hyps: list[str] = []
    require_references(examples, "oracles need one")
    for i, example in enumerate(examples):
        references = example.references if all_references else [example.reference]
        for h, hypothesis in enumerate(example.hypotheses):
            for r, reference in enumerate(references):
                pairs.append((i, h, r))
                refs.append(normalize(reference))
                hyps.append(normalize(hypothesis))
    best: dict[int, tuple[int, int]] = {}  # example index -> (errors, hypothesis index)
    for (i, h, _), (errors, _) in zip(pairs, edit_counts(refs, hyps, unit), strict=True):
        if i not in best or errors < best[i][0] or (errors == best[i][0] and h < best[i][1]):
            best[i] = (errors, h)
    return {example.id: example.hypotheses[best[i][1]] for i, example in enumerate(examples)}


def task_oracle_outputs(examples: Sequence[Example], scorer: Scorer) -> dict[str, str]:
    """o_nb choices for examples of any tasks, each measured as its task is scored (see above)."""
    by_task: dict[str, list[Example]] = {}
    for example in examples:
        by_task.setdefault(example.task, []).append(example)
    chosen: dict[str, str] = {}
    for task, group in by_task.items():
        metric = scorer.task_metric(task)
        multi = metric.oracle_references == "all"
        chosen.update(
            nbest_oracle_outputs(group, scorer.normalize_fn(task), metric.oracle_unit, all_references=multi)
        )
    return chosen


COMPOSITIONAL_METRIC = "wer"
"""The metric o_cp is a value of: a word error rate."""


def compositional_oracle_counts(example: Example, normalize: Callable[[str], str]) -> tuple[int, int]:
    """(unavoidable word errors, reference words) of one example (see the module documentation)."""
    require_references([example], "oracles need one")
    available = {word for hypothesis in example.hypotheses for word in normalize(hypothesis).split()}
    reference = normalize(example.reference).split()
    return sum(1 for word in reference if word not in available), len(reference)


def compositional_oracle_wer(examples: Sequence[Example], normalize: Callable[[str], str]) -> float:
    """Corpus o_cp in percent (see the module documentation); NaN where the references hold no word,
    as for every error rate (`neko.evaluate.metrics`)."""
    if not examples:
        raise NekoError("o_cp of no examples is undefined")
    counts = [compositional_oracle_counts(e, normalize) for e in examples]
    errors = sum(c[0] for c in counts)
    words = sum(c[1] for c in counts)
    return 100.0 * errors / words if words else math.nan
