"""Tuning the safety valve on dev data: how far may a correction stray from the hypotheses?

A small corrector helps where it edits a little and hurts where it rewrites. The valve's
`max_edit_rate` is the cut between the two: an output that needs more character edits than that
fraction of every hypothesis (plus the valve's slack) falls back to the 1-best. The best cut differs by
task and by model, so it is measured: `tune_edit_rates` corrects dev examples once with no edit limit,
replays the valve at each candidate rate, and keeps per task the rate whose outputs score best on the
task's headline metric (ties go to the smaller, more conservative rate). The chosen rates go into the
model's `neko.json` (`max_edit_rate`), which `Corrector.correct` reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from neko.correct.corrector import Correction, Corrector
from neko.correct.model_dir import read_model_info, write_model_info
from neko.correct.safety import SafetyValve
from neko.data.schema import Example
from neko.evaluate.metrics import LOWER_IS_BETTER, Scorer

CANDIDATE_RATES: tuple[float | None, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, None)
"""The rates tried by default; None is no limit (only the other degeneracy checks)."""


@dataclass(frozen=True)
class RateTrial:
    """The dev score of one `max_edit_rate`, and how many outputs it sent back to the 1-best."""

    rate: float | None
    score: float
    fallbacks: int


@dataclass(frozen=True)
class TaskTuning:
    """The trials of one task; `best` is the rate to use."""

    task: str
    metric: str
    examples: int
    one_best: float
    trials: list[RateTrial]
    best: RateTrial


def tune_edit_rates(
    corrector: Corrector,
    examples: Sequence[Example],
    rates: Sequence[float | None] = CANDIDATE_RATES,
    scorer: Scorer | None = None,
    batch_size: int = 16,
) -> dict[str, TaskTuning]:
    """Per task of `examples` (which need references), the trials of every rate in `rates`."""
    scorer = scorer or Scorer(errant=False)
    open_valve = SafetyValve(max_edit_rate=None)
    corrections = corrector.correct(examples, batch_size=batch_size, safety_valve=open_valve)
    by_task: dict[str, list[tuple[Example, Correction]]] = defaultdict(list)
    for example, correction in zip(examples, corrections, strict=True):
        by_task[correction.task].append((example, correction))
    return {task: _tune_task(task, pairs, rates, scorer) for task, pairs in sorted(by_task.items())}


def _tune_task(
    task: str, pairs: list[tuple[Example, Correction]], rates: Sequence[float | None], scorer: Scorer
) -> TaskTuning:
    metric = scorer.headline(task)
    task_examples = [example for example, _ in pairs]
    one_best = scorer.score(metric, task_examples, [e.best_hypothesis for e in task_examples])
    trials = []
    for rate in rates:
        outputs = [_valve_output(example, correction, rate) for example, correction in pairs]
        fallbacks = sum(output is None for output in outputs)
        texts = [e.best_hypothesis if o is None else o for e, o in zip(task_examples, outputs, strict=True)]
        trials.append(RateTrial(rate, scorer.score(metric, task_examples, texts), fallbacks))
    sign = -1 if metric in LOWER_IS_BETTER else 1
    best = max(trials, key=lambda trial: sign * trial.score)  # max keeps the first of equal scores
    return TaskTuning(task, metric, len(pairs), one_best, trials, best)


def _valve_output(example: Example, correction: Correction, rate: float | None) -> str | None:
    """The output the valve keeps at `rate`, or None when it falls back to the 1-best."""
    if correction.fell_back:
        return None
    if rate is not None and SafetyValve(max_edit_rate=rate).unrelated(correction.output, example.hypotheses):
        return None
    return correction.text


def save_edit_rates(model_dir: str | Path, tunings: dict[str, TaskTuning]) -> None:
    """Write the tuned rates into the model directory's `neko.json` (other tasks keep theirs)."""
    info = read_model_info(Path(model_dir))
    rates = dict(info.max_edit_rate) | {task: tuning.best.rate for task, tuning in tunings.items()}
    write_model_info(model_dir, replace(info, max_edit_rate=rates))
