"""Corpus metrics of every task, computed with the maintained packages.

- WER and CER: `jiwer` (Levenshtein alignment), corpus-level: total errors (substitutions + deletions +
  insertions) over total reference length, on the main reference. Texts are normalised first (see
  `neko.evaluate.normalize`): tasks scored by WER (speech) with the chosen normaliser, `basic` by
  default; all other tasks with `none` (whitespace only: case and punctuation count).
- BLEU and chrF: `sacrebleu` with its defaults (BLEU: 13a tokenisation, case-sensitive; chrF: character
  6-grams, beta 2), against all references of each example; `signatures` keeps what sacrebleu prints.
- GLEU: `neko.evaluate.gleu`, compatible with JFLEG's official script.
- ERRANT F0.5: `neko.evaluate.errant_score`, when installed; otherwise the column is left out and a
  note says why.

Every value is on a 0-100 scale (WER 12.5 means 12.5%). Which metrics a task reports follows from its
headline metric (`Task.metric`): `TASK_METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import jiwer
from sacrebleu.metrics import BLEU, CHRF

from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate import gleu as gleu_module
from neko.evaluate.normalize import get_normalizer
from neko.tasks import get_task

# Headline metric -> the metrics reported for a task, the headline first.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "wer": ("wer",),
    "cer": ("cer", "wer"),
    "bleu": ("bleu", "chrf"),
    "gleu": ("gleu", "errant_f05"),
}
LOWER_IS_BETTER = frozenset({"wer", "cer"})
METRIC_LABELS = {
    "wer": "WER", "cer": "CER", "bleu": "BLEU", "chrf": "chrF", "gleu": "GLEU", "errant_f05": "ERRANT F0.5",
}  # fmt: skip


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def edit_counts(
    references: Sequence[str], hypotheses: Sequence[str], unit: str = "word"
) -> list[tuple[int, int]]:
    """(errors, reference length) of each (reference, hypothesis) pair, in words or characters.

    Texts are used as given (normalise first); words are whitespace-separated, characters include the
    single spaces between words, as jiwer's CER counts them.
    """
    if len(references) != len(hypotheses):
        raise NekoError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return []
    if unit == "word":
        output = jiwer.process_words(list(references), list(hypotheses))
    elif unit == "char":
        output = jiwer.process_characters(list(references), list(hypotheses))
    else:
        raise NekoError(f"unknown edit unit {unit!r}; expected 'word' or 'char'")
    counts = []
    for ref_units, chunks in zip(output.references, output.alignments, strict=True):
        errors = sum(
            (c.hyp_end_idx - c.hyp_start_idx) if c.type == "insert" else (c.ref_end_idx - c.ref_start_idx)
            for c in chunks
            if c.type != "equal"
        )
        counts.append((errors, len(ref_units)))
    return counts


def _rate(references: Sequence[str], hypotheses: Sequence[str], unit: str) -> float:
    if not references:
        raise NekoError("an error rate of no examples is undefined")
    if unit == "word":
        return 100.0 * jiwer.process_words(list(references), list(hypotheses)).wer
    return 100.0 * jiwer.process_characters(list(references), list(hypotheses)).cer


def wer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "basic") -> float:
    """Corpus word error rate in percent, after normalising both sides."""
    norm = get_normalizer(normalizer)
    return _rate([norm(r) for r in references], [norm(h) for h in hypotheses], "word")


def cer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "none") -> float:
    """Corpus character error rate in percent, after normalising both sides."""
    norm = get_normalizer(normalizer)
    return _rate([norm(r) for r in references], [norm(h) for h in hypotheses], "char")


def _reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position, `None` where an example has fewer."""
    width = max((len(refs) for refs in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus BLEU (sacrebleu defaults) and its signature."""
    metric = BLEU()
    score = metric.corpus_score(list(hypotheses), _reference_streams(references))
    return score.score, str(metric.get_signature())


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus chrF (sacrebleu defaults) and its signature."""
    metric = CHRF()
    score = metric.corpus_score(list(hypotheses), _reference_streams(references))
    return score.score, str(metric.get_signature())


def relative_change(baseline: float | None, value: float | None) -> float | None:
    """(value - baseline) / baseline in percent: a WER going 10 -> 8 is -20.0; None if undefined."""
    if baseline is None or value is None or baseline == 0:
        return None
    return 100.0 * (value - baseline) / baseline


def relative_reduction(baseline: float, value: float) -> float | None:
    """Relative error-rate reduction in percent: WER 10 -> 8 is 20.0 (the negated relative change)."""
    change = relative_change(baseline, value)
    return None if change is None else -change


class Scorer:
    """Scores outputs of examples with the metrics of their task; keeps signatures and notes.

    `normalizer` applies to the tasks scored by WER; `errant=False` skips ERRANT even if installed.
    """

    def __init__(
        self, normalizer: str = "basic", gleu_iterations: int = gleu_module.ITERATIONS, errant: bool = True
    ) -> None:
        get_normalizer(normalizer)  # validate now
        self.normalizer = normalizer
        self.gleu_iterations = gleu_iterations
        self.signatures: dict[str, str] = {}
        self.notes: list[str] = []
        self._errant_wanted = errant
        self._errant_extractor = None
        self._errant_checked = False

    # -- which metrics, which normaliser ---------------------------------------------------------
    def headline(self, task: str) -> str:
        metric = get_task(task).metric
        if metric not in TASK_METRICS:
            raise NekoError(f"task {task!r}: unknown metric {metric!r}; known: {', '.join(TASK_METRICS)}")
        return metric

    def metrics_for(self, task: str) -> list[str]:
        """The metrics reported for `task`, headline first; ERRANT only when it can run."""
        metrics = list(TASK_METRICS[self.headline(task)])
        if "errant_f05" in metrics and self._extractor() is None:
            metrics.remove("errant_f05")
        return metrics

    def normalizer_for(self, task: str) -> str:
        return self.normalizer if self.headline(task) == "wer" else "none"

    def normalize_fn(self, task: str) -> Callable[[str], str]:
        return get_normalizer(self.normalizer_for(task))

    def _extractor(self):
        if not self._errant_checked:
            self._errant_checked = True
            if self._errant_wanted:
                from neko.evaluate import errant_score

                reason = errant_score.unavailable_reason()
                if reason is None:
                    self._errant_extractor = errant_score.EditExtractor()
                    meta = self._errant_extractor.annotator.nlp.meta
                    model = f"{meta.get('lang')}_{meta.get('name')}-{meta.get('version')}"
                    self.signatures["errant_f05"] = (
                        f"errant:{_version('errant')}|spacy-model:{model}|mode:span-correction|beta:0.5"
                    )
                else:
                    self.notes.append(f"ERRANT F0.5 omitted: {reason}")
        return self._errant_extractor

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, metric: str, examples: Sequence[Example], outputs: Sequence[str]) -> float:
        """Corpus `metric` (0-100) of `outputs`, one per example, all of one task."""
        if not examples:
            raise NekoError(f"{metric}: no examples to score")
        if len(examples) != len(outputs):
            raise NekoError(f"{metric}: {len(examples)} examples but {len(outputs)} outputs")
        for example in examples:
            if example.reference is None:
                raise NekoError(f"example {example.id!r} has no reference; it cannot be scored")
        task = examples[0].task
        if metric in ("wer", "cer"):
            normalizer = self.normalizer_for(task)
            self.signatures[f"{metric}:{task}"] = (
                f"jiwer:{_version('jiwer')}|normalizer:{normalizer}|ref:main"
            )
            scorer = wer if metric == "wer" else cer
            return scorer([e.reference for e in examples], outputs, normalizer=normalizer)
        references = [e.references for e in examples]
        if metric in ("bleu", "chrf"):
            value, signature = (bleu if metric == "bleu" else chrf)(outputs, references)
            self.signatures[metric] = signature
            return value
        if metric == "gleu":
            self.signatures["gleu"] = (
                f"gleu:jfleg-2016|order:4|iterations:{self.gleu_iterations}|seed:101j|tok:split|src:1-best"
            )
            result = gleu_module.corpus_gleu(
                [e.best_hypothesis for e in examples], outputs, references, self.gleu_iterations
            )
            return 100.0 * result.score
        if metric == "errant_f05":
            from neko.evaluate.errant_score import errant_f05

            extractor = self._extractor()
            if extractor is None:
                raise NekoError("ERRANT is not available here")
            sources = [e.best_hypothesis for e in examples]
            return 100.0 * errant_f05(sources, outputs, references, extractor).f05
        raise NekoError(f"unknown metric {metric!r}")
