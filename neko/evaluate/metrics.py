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

Every value is on a 0-100 scale (WER 12.5 means 12.5%). Metrics are registered by name (`Metric`,
`register_metric`, as fairseq registers its scorers); a task names its headline metric
(`Task.metric`), and that metric says how the task is scored: which metrics are reported with it,
which normaliser, which references the N-best oracle uses, and whether the compositional oracle is
reported. Everything that scores asks the `Scorer`, which asks the task's metric, so a task with a
new metric needs no change anywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import jiwer
from sacrebleu.metrics import BLEU, CHRF

from neko.data.schema import Example, require_references
from neko.errors import NekoError
from neko.evaluate import GLEU_ITERATIONS
from neko.evaluate import gleu as gleu_module
from neko.evaluate.normalize import NORMALIZERS, get_normalizer
from neko.tasks import get_task

SPEECH_NORMALIZER = "speech"
"""`Metric.normalizer` of metrics that head speech tasks: the normaliser the evaluation chose
(`neko eval --normalizer`, `basic` by default) rather than a fixed one."""
ORACLE_UNITS = ("word", "char")
ORACLE_REFERENCES = ("main", "all")

MetricFunction = Callable[["Scorer", Sequence[Example], Sequence[str]], float]
"""(scorer, examples of one task with references, one output each) -> corpus value on 0-100; it may
record how it was computed in `scorer.signatures`."""


@dataclass(frozen=True)
class Metric:
    """A corpus metric, and how a task whose headline it is gets scored.

    `also`: metrics reported after it on such a task. `normalizer`: applied to references and outputs
    of the error rates of such a task (a name of `neko.evaluate.normalize.NORMALIZERS`, or
    `SPEECH_NORMALIZER`). The N-best oracle of such a task picks the hypothesis with the fewest
    `oracle_unit` edits against the main reference, or against the closest of `all` references.
    `compositional_oracle`: also report HyPoradise's o_cp (a WER bound, for speech tasks).
    `available`: whether the metric can run here (None: always); an unavailable one is left out.
    """

    name: str
    label: str
    lower_is_better: bool
    compute: MetricFunction
    also: tuple[str, ...] = ()
    normalizer: str = "none"
    oracle_unit: str = "word"
    oracle_references: str = "main"
    compositional_oracle: bool = False
    available: Callable[[Scorer], bool] | None = None

    def __post_init__(self) -> None:
        if self.normalizer not in (*NORMALIZERS, SPEECH_NORMALIZER):
            raise NekoError(f"metric {self.name!r}: unknown normaliser {self.normalizer!r}")
        if self.oracle_unit not in ORACLE_UNITS:
            raise NekoError(f"metric {self.name!r}: oracle_unit must be one of {', '.join(ORACLE_UNITS)}")
        if self.oracle_references not in ORACLE_REFERENCES:
            raise NekoError(
                f"metric {self.name!r}: oracle_references must be one of {', '.join(ORACLE_REFERENCES)}"
            )

    @property
    def direction(self) -> str:
        return "lower" if self.lower_is_better else "higher"

    @property
    def arrow_label(self) -> str:
        """The label with its direction, as tables show it: "WER ↓"."""
        return f"{self.label} {'↓' if self.lower_is_better else '↑'}"


_METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Make a metric known by name, for tasks to name as their headline (`Task.metric`)."""
    if metric.name in _METRICS and not replace and _METRICS[metric.name] != metric:
        raise NekoError(f"metric {metric.name!r} is already registered with a different definition")
    _METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The registered metric called `name`, or a one-line error listing the known ones."""
    try:
        return _METRICS[name]
    except KeyError:
        raise NekoError(f"unknown metric {name!r}; known: {', '.join(_METRICS)}") from None


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
    output = _align(references, hypotheses, unit)
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
    """Errors per reference unit in percent; NaN where the references hold no unit at all (a group of
    silent utterances): a rate over nothing is undefined, and jiwer's answer there, the number of
    inserted units, is a count, not a rate."""
    if not references:
        raise NekoError("an error rate of no examples is undefined")
    output = _align(references, hypotheses, unit)
    reference_units = output.hits + output.substitutions + output.deletions
    if reference_units == 0:
        return math.nan
    return 100.0 * (output.substitutions + output.deletions + output.insertions) / reference_units


def _align(
    references: Sequence[str], hypotheses: Sequence[str], unit: str
) -> jiwer.WordOutput | jiwer.CharacterOutput:
    """jiwer's alignment of the pairs, in words or in characters."""
    if unit == "word":
        return jiwer.process_words(list(references), list(hypotheses))
    if unit == "char":
        return jiwer.process_characters(list(references), list(hypotheses))
    raise NekoError(f"unknown edit unit {unit!r}; expected 'word' or 'char'")


def wer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "basic") -> float:
    """Corpus word error rate in percent, after normalising both sides."""
    norm = get_normalizer(normalizer)
    return _rate([norm(r) for r in references], [norm(h) for h in hypotheses], "word")


def cer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "none") -> float:
    """Corpus character error rate in percent, after normalising both sides."""
    norm = get_normalizer(normalizer)
    return _rate([norm(r) for r in references], [norm(h) for h in hypotheses], "char")


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position, `None` where an example has fewer."""
    width = max((len(refs) for refs in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus BLEU (sacrebleu defaults) and its signature."""
    metric = BLEU()
    score = metric.corpus_score(list(hypotheses), reference_streams(references))
    return score.score, str(metric.get_signature())


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, str]:
    """Corpus chrF (sacrebleu defaults) and its signature."""
    metric = CHRF()
    score = metric.corpus_score(list(hypotheses), reference_streams(references))
    return score.score, str(metric.get_signature())


def relative_change(baseline: float | None, value: float | None) -> float | None:
    """(value - baseline) / baseline in percent: a WER going 10 -> 8 is -20.0; None if undefined."""
    if baseline is None or value is None or baseline == 0 or math.isnan(baseline) or math.isnan(value):
        return None
    return 100.0 * (value - baseline) / baseline


def format_score(value: float, digits: int = 2) -> str:
    """A score as printed in tables: `digits` decimals, or "n/a" for an undefined one (NaN, such as
    the error rate of references with no words)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


class Scorer:
    """Scores outputs of examples with the metrics of their task; keeps signatures and notes.

    `normalizer` applies to the tasks whose metric asks for `SPEECH_NORMALIZER`; `errant=False`
    skips ERRANT even if installed.
    """

    def __init__(
        self, normalizer: str = "basic", gleu_iterations: int = GLEU_ITERATIONS, errant: bool = True
    ) -> None:
        get_normalizer(normalizer)  # validate now
        self.normalizer = normalizer
        self.gleu_iterations = gleu_iterations
        self.signatures: dict[str, str] = {}
        self.notes: list[str] = []
        self._errant_wanted = errant
        self._errant_extractor = None
        self._errant_checked = False

    # -- what the task asks for ----------------------------------------------------------------------
    def headline(self, task: str) -> str:
        """The name of the task's headline metric (`Task.metric`), checked to be registered."""
        name = get_task(task).metric
        if name not in _METRICS:
            raise NekoError(f"task {task!r}: unknown metric {name!r}; known: {', '.join(_METRICS)}")
        return name

    def task_metric(self, task: str) -> Metric:
        """The task's headline `Metric`: how the task is scored."""
        return _METRICS[self.headline(task)]

    def metrics_for(self, task: str) -> list[str]:
        """The metrics reported for `task`, headline first; those that cannot run here left out."""
        headline = self.task_metric(task)
        metrics = [headline, *(get_metric(name) for name in headline.also)]
        return [m.name for m in metrics if m.available is None or m.available(self)]

    def normalizer_for(self, task: str) -> str:
        normalizer = self.task_metric(task).normalizer
        return self.normalizer if normalizer == SPEECH_NORMALIZER else normalizer

    def normalize_fn(self, task: str) -> Callable[[str], str]:
        return get_normalizer(self.normalizer_for(task))

    def errant_extractor(self):
        """ERRANT's edit extractor, loaded once; None (with a note) when ERRANT cannot run here."""
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
        require_references(examples, "it cannot be scored")
        return get_metric(metric).compute(self, examples, outputs)


def _error_rate(name: str, rate: Callable[..., float]) -> MetricFunction:
    """`wer` or `cer` above on the main reference, after the task's normaliser."""

    def compute(scorer: Scorer, examples: Sequence[Example], outputs: Sequence[str]) -> float:
        task = examples[0].task
        normalizer = scorer.normalizer_for(task)
        scorer.signatures[f"{name}:{task}"] = f"jiwer:{_version('jiwer')}|normalizer:{normalizer}|ref:main"
        return rate([e.reference for e in examples], outputs, normalizer=normalizer)

    return compute


def _sacrebleu(name: str, function: Callable) -> MetricFunction:
    """A sacrebleu metric (`bleu` or `chrf` above) against all references."""

    def compute(scorer: Scorer, examples: Sequence[Example], outputs: Sequence[str]) -> float:
        value, signature = function(outputs, [e.references for e in examples])
        scorer.signatures[name] = signature
        return value

    return compute


def _gleu(scorer: Scorer, examples: Sequence[Example], outputs: Sequence[str]) -> float:
    scorer.signatures["gleu"] = (
        f"gleu:jfleg-2016|order:4|iterations:{scorer.gleu_iterations}|seed:101j|tok:split|src:1-best"
    )
    sources = [e.best_hypothesis for e in examples]
    references = [e.references for e in examples]
    return 100.0 * gleu_module.corpus_gleu(sources, outputs, references, scorer.gleu_iterations).score


def _errant(scorer: Scorer, examples: Sequence[Example], outputs: Sequence[str]) -> float:
    from neko.evaluate.errant_score import errant_f05

    extractor = scorer.errant_extractor()
    if extractor is None:
        raise NekoError("ERRANT is not available here")
    sources = [e.best_hypothesis for e in examples]
    return 100.0 * errant_f05(sources, outputs, [e.references for e in examples], extractor).f05


BUILTIN_METRICS = (
    Metric(
        "wer", "WER", True, _error_rate("wer", wer),
        normalizer=SPEECH_NORMALIZER, compositional_oracle=True,
    ),
    Metric("cer", "CER", True, _error_rate("cer", cer), also=("wer",), oracle_unit="char"),
    Metric("bleu", "BLEU", False, _sacrebleu("bleu", bleu), also=("chrf",), oracle_references="all"),
    Metric("chrf", "chrF", False, _sacrebleu("chrf", chrf), oracle_references="all"),
    Metric("gleu", "GLEU", False, _gleu, also=("errant_f05",), oracle_references="all"),
    Metric(
        "errant_f05", "ERRANT F0.5", False, _errant, oracle_references="all",
        available=lambda scorer: scorer.errant_extractor() is not None,
    ),
)  # fmt: skip

for _builtin in BUILTIN_METRICS:
    register_metric(_builtin)
