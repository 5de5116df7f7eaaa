"""Tuning the safety valve on dev data: how far may a correction stray from the hypotheses, and what
replaces one that strays too far?

A small corrector helps where it edits a little and hurts where it rewrites. The valve's
`max_edit_rate` is the cut between the two: an output that needs more character edits than that
fraction of every hypothesis (plus the valve's slack) falls back to the 1-best. The best cut differs by
task and by model, so it is measured. A rejected output is replaced by the 1-best, or by the hypothesis
the model finds most likely (`rerank`): a model too weak to rewrite may still tell a good reading from
a bad one. `tune_valve` corrects and reranks dev examples once, replays the valve at each candidate
rate with each fallback, and keeps per task the pair whose outputs score best on the task's headline
metric (ties go to the 1-best fallback and the smaller, more conservative rate). The choice goes into
the model's `neko.json` (`max_edit_rate`, `fallback`), which `Corrector.correct` reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from neko.correct.corrector import Correction, Corrector
from neko.correct.model_dir import FALLBACKS, read_model_info, write_model_info
from neko.correct.safety import SafetyValve
from neko.data.schema import Example
from neko.evaluate.metrics import LOWER_IS_BETTER, Scorer

CANDIDATE_RATES: tuple[float | None, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, None)
"""The rates tried by default; None is no limit (only the other degeneracy checks)."""


@dataclass(frozen=True)
class ValveTrial:
    """The dev score of one `max_edit_rate` and fallback, and how many outputs the valve rejected."""

    rate: float | None
    fallback: str
    score: float
    fallbacks: int


@dataclass(frozen=True)
class TaskTuning:
    """The trials of one task; `best` is the setting to use."""

    task: str
    metric: str
    examples: int
    one_best: float
    trials: list[ValveTrial]
    best: ValveTrial


def tune_valve(
    corrector: Corrector,
    examples: Sequence[Example],
    rates: Sequence[float | None] = CANDIDATE_RATES,
    scorer: Scorer | None = None,
    batch_size: int = 16,
) -> dict[str, TaskTuning]:
    """Per task of `examples` (which need references), the trials of every rate in `rates` with every
    fallback."""
    scorer = scorer or Scorer(errant=False)
    open_valve = SafetyValve(max_edit_rate=None)
    corrections = corrector.correct(examples, batch_size=batch_size, safety_valve=open_valve)
    reranked = corrector.rerank(examples, batch_size=batch_size)
    by_task: dict[str, list[tuple[Example, Correction, str]]] = defaultdict(list)
    for example, correction, pick in zip(examples, corrections, reranked, strict=True):
        by_task[correction.task].append((example, correction, pick))
    return {task: tune_task(task, rows, rates, scorer) for task, rows in sorted(by_task.items())}


def tune_task(
    task: str, rows: list[tuple[Example, Correction, str]], rates: Sequence[float | None], scorer: Scorer
) -> TaskTuning:
    """The trials of one task from its rows (example, its correction with no edit limit, the model's
    reranked hypothesis)."""
    metric = scorer.headline(task)
    task_examples = [example for example, _, _ in rows]
    one_best = scorer.score(metric, task_examples, [e.best_hypothesis for e in task_examples])
    trials = []
    for fallback in FALLBACKS:
        for rate in rates:
            outputs = [_valve_output(example, correction, rate) for example, correction, _ in rows]
            replacements = [e.best_hypothesis if fallback == "1-best" else pick for e, _, pick in rows]
            texts = [r if o is None else o for o, r in zip(outputs, replacements, strict=True)]
            score = scorer.score(metric, task_examples, texts)
            trials.append(ValveTrial(rate, fallback, score, sum(o is None for o in outputs)))
    sign = -1 if metric in LOWER_IS_BETTER else 1
    best = max(trials, key=lambda trial: sign * trial.score)  # max keeps the first of equal scores
    return TaskTuning(task, metric, len(rows), one_best, trials, best)


def _valve_output(example: Example, correction: Correction, rate: float | None) -> str | None:
    """The output the valve keeps at `rate`, or None when it rejects it (the trial's fallback replaces it)."""
    if correction.fell_back:
        return None
    if rate is not None and SafetyValve(max_edit_rate=rate).unrelated(correction.output, example.hypotheses):
        return None
    return correction.text


def save_valve_settings(model_dir: str | Path, tunings: dict[str, TaskTuning]) -> None:
    """Write the tuned rates and fallbacks into the model directory's `neko.json` (other tasks keep
    theirs)."""
    info = read_model_info(Path(model_dir))
    rates = dict(info.max_edit_rate) | {task: tuning.best.rate for task, tuning in tunings.items()}
    fallbacks = dict(info.fallback) | {task: tuning.best.fallback for task, tuning in tunings.items()}
    write_model_info(model_dir, replace(info, max_edit_rate=rates, fallback=fallbacks))
