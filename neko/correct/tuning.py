"""Tuning the correction gate on dev data: when may the model's output replace the 1-best?

`tune_gate` corrects dev examples once with the valve's edit limit open (its other checks recorded),
keeps what the gate decides on (`neko.correct.gate.Evidence`) and, per task, replays every setting of
a grid: the safety valve's `max_edit_rate`, and the gate's `accept_margin`, `rerank_margin`,
`min_familiarity` (a quantile of the task's dev familiarity: inputs less familiar than that share of
the dev data are left alone), `require_support` and `min_confidence`. The chosen setting is
selective prediction done conservatively:

- every dev domain (task x text source, the first part of the dataset name, with at least `MIN_DATASET`
  examples) whose outputs a setting changes must gain at least `MIN_DOMAIN_GAIN` (1%) of its own 1-best
  score, and no dataset within it may lose more than that: a setting that trades one domain's damage
  for another's gain is out, and so is one that touches a domain for a gain too small to tell from
  noise;
- among the settings that keep at least `KEEP_GAIN` of the best gain over the 1-best, the one with the
  strictest familiarity threshold (dev data cannot show the domains a model has never seen; the
  familiarity is what guards them), then the one that takes the fewest outputs, then the one with
  the strictest confidence threshold: what little more a bolder setting wins on the tuning data is
  more likely noise than skill;
- the grid is restricted by the first of `CAUTION_LEVELS` (as tuned; supported edits only; also on
  familiar input only; reranking only) under which leave-one-domain-out tuning makes no held-out
  domain, nor any dataset within it, lose more than `MIN_DOMAIN_GAIN`: each dev domain in turn plays a
  domain the model's users bring and the dev data does not show (real ATIS lists against synthetic
  ones, JFLEG against synthetic grammar noise), and under which one of the level's
  `ROBUST_CANDIDATES` most preferred settings has a gain on every domain it changes that survives a
  paired bootstrap (`CONFIDENCE`): the first that does is chosen. When none does, the level's best
  gains were luck (a handful of edits in one domain), and it is judged by the largest gain that holds
  instead: the most preferred setting that keeps `KEEP_GAIN` of that gain and holds. When every level
  fails, or no dev domain has the `MIN_DATASET` examples to judge a setting on, the gate stays closed.

The risk-coverage curve of each task (the metric when the k outputs with the largest margins are
taken, the 1-best elsewhere) shows how selective the model has to be. The choice goes into
`neko.json` (`max_edit_rate`, `gate`), which `Corrector.correct` reads.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import numpy as np

from neko.correct.corrector import Corrector
from neko.correct.engines import ONNX_MODEL_FILE
from neko.correct.gate import Evidence, GateRule
from neko.correct.model_dir import read_model_info, write_model_info
from neko.correct.onnx_lm import weights_digest
from neko.correct.safety import SafetyValve
from neko.data.schema import Example, require_references
from neko.errors import NekoError
from neko.evaluate.metrics import Scorer, edit_counts, get_metric, reference_streams
from neko.io import read_json_lines, write_json_lines

EDIT_RATES: tuple[float | None, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, None)
"""The safety valve's `max_edit_rate` values tried; None is no limit."""
ACCEPT_MARGINS: tuple[float | None, ...] = (None, 1.5, 1.0, 0.75, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0, -0.5)
RERANK_MARGINS: tuple[float | None, ...] = (None, 1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0)
FAMILIARITY_QUANTILES: tuple[float | None, ...] = (0.5, 0.25, 0.1, 0.05, 0.01, None)
CONFIDENCES: tuple[float | None, ...] = (None, -0.4, -0.2, -0.1, -0.05)
"""`min_confidence` values tried (mean token log-probability of the output); only with an accept
margin, the one outcome they gate."""
MIN_DATASET = 20
MIN_DOMAIN_GAIN = 0.01
"""A domain whose outputs a setting changes must gain at least this share of its 1-best score: a
smaller gain on the tuning data is noise, and held-out data of that domain may just as well lose. A
smaller loss is noise too: a dataset within a domain, or a domain held out of the tuning, may lose up
to this share, no more."""
KEEP_GAIN = 0.9
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000
"""The chosen setting must beat the 1-best of every dev domain it changes in `CONFIDENCE` of this many
paired bootstrap resamples of the domain (Koehn 2004), else the next preferred setting is; when none
of `ROBUST_CANDIDATES` passes, the settings of the largest gain that passes; when no gain passes, the
next caution level."""
ROBUST_CANDIDATES = 20
"""How many of a level's most preferred settings are resampled, in order, for one whose gains hold: the
first often differs from the next by an output or two, and one fragile output should not close a
level that a setting without it passes."""
CHOICES = ("1-best", "rerank", "model")


@dataclass(frozen=True)
class Caution:
    """A restriction of the settings grid. The levels go from boldest to most careful; the first whose
    leave-one-domain-out check harms no held-out domain is the one tuned on all the dev data."""

    name: str
    require_support: bool = False
    min_quantile: float = 0.0
    """The familiarity threshold is at least this quantile of the dev familiarity."""
    model_outputs: bool = True
    """Whether the model's own output may be taken (else only the rerank pick or the 1-best)."""
    reranks: bool = True

    def admits(
        self,
        accept_margin: float | None,
        rerank_margin: float | None,
        require_support: bool,
        quantile: float | None,
    ) -> bool:
        if not self.model_outputs and accept_margin is not None:
            return False
        if not self.reranks and rerank_margin is not None:
            return False
        if self.require_support and not require_support:
            return False
        return (quantile or 0.0) >= self.min_quantile


CAUTION_LEVELS = (
    Caution("as tuned"),
    Caution("supported edits", require_support=True),
    Caution("supported edits on familiar input", require_support=True, min_quantile=0.25),
    Caution("reranking familiar input", model_outputs=False, min_quantile=0.25),
)
CLOSED = Caution("closed", model_outputs=False, reranks=False)
"""Admits only settings that touch nothing: every example keeps its 1-best."""
TUNING_GLEU_ITERATIONS = 20
"""GLEU's reference-sampling iterations while tuning: each of thousands of settings is scored, and
the ranking of settings is stable long before the 500 iterations of a reported score."""
EDIT_RATE_METRICS = {"wer": "word", "cer": "char"}
"""Metrics that are sums of per-example edits: replayed from counts, not rescored."""


@dataclass(frozen=True)
class Row:
    """One dev example with its gate evidence (the valve's edit limit open) and the edit rate the
    valve needs."""

    example: Example
    evidence: Evidence
    needed_edit_rate: float


@dataclass(frozen=True)
class GateTrial:
    """The dev result of one setting."""

    max_edit_rate: float | None
    rule: GateRule
    score: float
    per_dataset: dict[str, float]
    taken: dict[str, int]


@dataclass(frozen=True)
class TaskTuning:
    """The tuning of one task: its 1-best, the chosen setting, the best unconstrained one, the curve."""

    task: str
    metric: str
    examples: int
    one_best: float
    one_best_per_dataset: dict[str, float]
    best: GateTrial
    boldest: GateTrial
    trials: int
    risk_coverage: list[tuple[float, float]]
    caution: str
    held_out: dict[str, tuple[float, float]]
    """Per dev domain: (1-best, score under the setting tuned without that domain) at `caution`."""
    rejected: dict[str, str]
    """Bolder caution levels that were tried, each with why it failed: the held-out domain it made
    worse, or the domain whose gain did not hold under resampling."""


def collect_rows(corrector: Corrector, examples: Sequence[Example], batch_size: int = 16) -> list[Row]:
    """Correct `examples` once with the valve's edit limit open, keeping each one's evidence."""
    require_references(examples, "the gate cannot be tuned on it")
    open_valve = SafetyValve(max_edit_rate=None)
    corrections = corrector.correct(examples, batch_size=batch_size, safety_valve=open_valve, evidence=True)
    return [
        Row(example, c.evidence, open_valve.needed_edit_rate(c.output, example.hypotheses))
        for example, c in zip(examples, corrections, strict=True)
    ]


def tune_gate(
    corrector: Corrector, examples: Sequence[Example], scorer: Scorer | None = None, batch_size: int = 16
) -> dict[str, TaskTuning]:
    """Per task of `examples` (which need references), the chosen gate setting."""
    return tune_rows(collect_rows(corrector, examples, batch_size), scorer)


def tune_rows(rows: Sequence[Row], scorer: Scorer | None = None) -> dict[str, TaskTuning]:
    """Per task of `rows`, the chosen gate setting."""
    by_task: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_task[row.example.task].append(row)
    scorer = scorer or Scorer(errant=False, gleu_iterations=TUNING_GLEU_ITERATIONS)
    return {task: tune_task(task, task_rows, scorer) for task, task_rows in sorted(by_task.items())}


def domain(example: Example) -> str:
    """The part of a dataset name that says where the text comes from (`captions/flite-slt/noise` ->
    `captions`): the unit that may not get worse."""
    return example.dataset.split("/")[0]


class _Replay:
    """Scores choices (0: 1-best, 1: rerank pick, 2: model output) per example of one task, per
    dataset; word and character error rates from per-example edit counts, other metrics cached."""

    def __init__(self, task: str, rows: list[Row], scorer: Scorer) -> None:
        self.metric = scorer.headline(task)
        self.sign = 1.0 if get_metric(self.metric).lower_is_better else -1.0
        self.rows = rows
        self.scorer = scorer
        names = sorted({domain(row.example) for row in rows})
        self.datasets = {
            name: np.array([i for i, row in enumerate(rows) if domain(row.example) == name]) for name in names
        }
        self.units = _units(rows)
        self.texts = [[r.evidence.best, r.evidence.pick, r.evidence.output] for r in rows]
        self.edits = self._edit_table() if self.metric in EDIT_RATE_METRICS else None
        self.stats = STATS_METRICS[self.metric](rows, self.texts) if self.metric in STATS_METRICS else None
        self.cache: dict[tuple[str, bytes], float] = {}
        self.wins: dict[tuple[str, bytes], int] = {}
        self.resamples: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _edit_table(self) -> tuple[np.ndarray, np.ndarray]:
        normalize = self.scorer.normalize_fn(self.rows[0].example.task)
        unit = EDIT_RATE_METRICS[self.metric]
        references = [normalize(row.example.reference or "") for row in self.rows]
        columns = [
            edit_counts(references, [normalize(texts[k]) for texts in self.texts], unit) for k in range(3)
        ]
        errors = np.array([[count[i][0] for count in columns] for i in range(len(self.rows))], dtype=float)
        lengths = np.array([count[1] for count in columns[0]], dtype=float)
        return errors, lengths

    def score(self, choice: np.ndarray, indices: np.ndarray | None = None) -> float:
        indices = np.arange(len(self.rows)) if indices is None else indices
        if self.edits is not None:
            errors, lengths = self.edits
            total = lengths[indices].sum()
            return 100.0 * errors[indices, choice[indices]].sum() / max(total, 1.0)
        if self.stats is not None:
            return self.stats.score(choice, indices)
        key = (indices.tobytes(), choice[indices].tobytes())
        if key not in self.cache:
            examples = [self.rows[i].example for i in indices]
            outputs = [self.texts[i][choice[i]] for i in indices]
            self.cache[key] = self.scorer.score(self.metric, examples, outputs)
        return self.cache[key]

    def per_dataset(self, choice: np.ndarray) -> dict[str, float]:
        return {name: self.score(choice, indices) for name, indices in self.datasets.items()}

    def bootstrap_wins(self, name: str, indices: np.ndarray, choice: np.ndarray) -> int:
        """In how many of `BOOTSTRAP_SAMPLES` paired resamples of the rows at `indices` (domain `name`)
        `choice` beats the 1-best. The resamples are fixed per domain (seeded by its name), so the
        answer depends on the domain's own choices alone and is computed once for each."""
        key = (name, choice[indices].tobytes())
        if key not in self.wins:
            samples, one_best = self._resamples(name, indices)
            scores = np.array([self.score(choice, sample) for sample in samples])
            self.wins[key] = int((self.sign * (one_best - scores) > 0).sum())
        return self.wins[key]

    def _resamples(self, name: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Domain `name`'s bootstrap resamples of its rows and the 1-best's score on each, drawn and
        scored once: every choice the domain is judged on is compared with the same ones."""
        if name not in self.resamples:
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            samples = rng.choice(indices, size=(BOOTSTRAP_SAMPLES, len(indices)))
            closed = np.zeros(len(self.rows), dtype=int)
            self.resamples[name] = (samples, np.array([self.score(closed, sample) for sample in samples]))
        return self.resamples[name]


class _BleuStats:
    """Corpus BLEU of any choice from per-sentence n-gram statistics (sacrebleu's), summed."""

    def __init__(self, rows: list[Row], texts: list[list[str]]) -> None:
        from sacrebleu.metrics import BLEU

        self.bleu = BLEU()
        streams = reference_streams([row.example.references for row in rows])
        columns = [self.bleu._extract_corpus_statistics([t[k] for t in texts], streams) for k in range(3)]
        self.table = np.stack([np.array(column, dtype=float) for column in columns], axis=1)

    def score(self, choice: np.ndarray, indices: np.ndarray) -> float:
        totals = self.table[indices, choice[indices]].sum(axis=0)
        return float(self.bleu._compute_score_from_stats([int(x) for x in totals]).score)


class _GleuStats:
    """Corpus GLEU of any choice from per-sentence statistics against each reference, averaged over
    `TUNING_GLEU_ITERATIONS` fixed reference samplings (as `neko.evaluate.gleu.corpus_gleu` samples)."""

    def __init__(self, rows: list[Row], texts: list[list[str]]) -> None:
        from neko.evaluate import gleu

        references = [row.example.references for row in rows]
        width = 2 * gleu.ORDER + 2
        self.table = np.zeros((len(rows), 3, max(map(len, references)), width))
        for i, (row, refs) in enumerate(zip(rows, references, strict=True)):
            for k in range(3):
                for r, reference in enumerate(refs):
                    self.table[i, k, r] = gleu.sentence_stats(
                        row.example.best_hypothesis, texts[i][k], reference
                    )
        self.samples = gleu.sample_reference_indices(
            [len(refs) for refs in references], TUNING_GLEU_ITERATIONS
        )

    def score(self, choice: np.ndarray, indices: np.ndarray) -> float:
        picked = self.table[indices, choice[indices]]  # (rows, references, width)
        totals = picked[np.arange(len(indices)), self.samples[:, indices]].sum(axis=1)  # (iterations, width)
        return 100.0 * float(_gleu_of_totals(totals).mean())


def _gleu_of_totals(totals: np.ndarray) -> np.ndarray:
    """`neko.evaluate.gleu.gleu_from_stats` of each row of summed statistics, at once."""
    counts, numerators, denominators = totals[:, 0], totals[:, 2::2], totals[:, 3::2]
    valid = (totals != 0).all(axis=1)
    safe = np.where(valid[:, None], numerators / np.where(denominators == 0, 1, denominators), 1.0)
    log_precision = np.log(np.where(safe > 0, safe, 1.0)).mean(axis=1)
    brevity = np.minimum(0.0, 1.0 - totals[:, 1] / np.where(counts == 0, 1, counts))
    return np.where(valid, np.exp(brevity + log_precision), 0.0)


STATS_METRICS = {"bleu": _BleuStats, "gleu": _GleuStats}
"""Metrics replayed from per-sentence statistics."""


EVIDENCE_VERSION = 3
"""The way `Corrector` writes outputs and gate evidence; raised whenever that changes, so that
evidence saved by an earlier neko is collected again rather than tuned on."""


def model_fingerprint(model_dir: Path) -> str:
    """The digest of the weights gate evidence comes from: the safetensors, or an export's model.onnx."""
    digest = weights_digest(model_dir)
    if digest is None:
        digest = hashlib.sha256((model_dir / ONNX_MODEL_FILE).read_bytes()).hexdigest()
    return digest


def write_rows(path: Path, rows: Sequence[Row], model: str) -> None:
    """Save rows collected with the model of fingerprint `model` (a first line names it), so the gate
    can be tuned again without running the model."""
    records = (
        {
            "example": r.example.to_dict(),
            "evidence": asdict(r.evidence),
            "needed_edit_rate": r.needed_edit_rate,
        }
        for r in rows
    )
    write_json_lines(path, [{"evidence_of_model": model, "evidence_version": EVIDENCE_VERSION}, *records])


def read_rows(path: Path, examples: Sequence[Example], model: str) -> list[Row]:
    """Rows saved by `write_rows` from the model of fingerprint `model`; they must be of exactly
    `examples` (ids, hypotheses, references), in order."""
    records = read_json_lines(path)
    _, _, header = next(records, (None, None, None))
    if not isinstance(header, dict) or "evidence_of_model" not in header:
        raise NekoError(
            f"{path}: not a gate evidence file (no header naming its model); delete it to collect it again"
        )
    rows = []
    for where, _, record in records:
        try:
            rows.append(
                Row(
                    Example.from_dict(record["example"], where),
                    _evidence(record["evidence"], where),
                    float(record["needed_edit_rate"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise NekoError(f"{where}: not a gate evidence record") from None
    if header.get("evidence_of_model") != model:
        raise NekoError(f"{path}: holds the evidence of another model; delete it to collect it again")
    if header.get("evidence_version") != EVIDENCE_VERSION:
        raise NekoError(
            f"{path}: evidence collected by another version of neko (outputs written differently); "
            "delete it to collect it again"
        )
    if [r.example for r in rows] != list(examples):
        raise NekoError(f"{path}: holds the evidence of other examples; delete it to collect it again")
    return rows


TEXT, NUMBER, FLAG = ((str,), "a string"), ((int, float), "a number"), ((bool,), "true or false")
EVIDENCE_FIELDS = {
    "output": TEXT,
    "best": TEXT,
    "pick": TEXT,
    "margin": NUMBER,
    "rerank_margin": NUMBER,
    "familiarity": NUMBER,
    "supported": FLAG,
    "confidence": NUMBER,
}


def _evidence(fields: dict, where: str) -> Evidence:
    """Saved evidence, each field of its type (a wrong one would only fail deep in the replay)."""
    if not isinstance(fields, dict):
        raise NekoError(f"{where}: field 'evidence' must be a JSON object")
    for name, (types, kind) in EVIDENCE_FIELDS.items():
        value = fields.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise NekoError(f"{where}: field 'evidence.{name}' must be {kind}")
    if not isinstance(fields.get("valve_reason"), str | None):
        raise NekoError(f"{where}: field 'evidence.valve_reason' must be a string or null")
    return Evidence(**fields)


def tune_task(task: str, rows: list[Row], scorer: Scorer) -> TaskTuning:
    """The chosen setting of one task from its dev rows (see the module documentation)."""
    replay = _Replay(task, rows, scorer)
    arrays = _arrays(rows)
    closed = np.zeros(len(rows), dtype=int)
    one_best, one_best_per_dataset = replay.score(closed), replay.per_dataset(closed)
    everything = _fold(replay, arrays, np.arange(len(rows)))
    judged = _judged(replay)
    # Leave-one-domain-out needs two domains; with one, only the most careful level is tried.
    held_out_folds = (
        {
            name: _fold(replay, arrays, np.setdiff1d(everything.indices, indices))
            for name, indices in judged.items()
        }
        if len(judged) >= 2
        else {}
    )
    rejected: dict[str, str] = {}
    levels = CAUTION_LEVELS if held_out_folds else CAUTION_LEVELS[-1:]
    if not judged:  # nothing to check a setting's harm or luck on: every example keeps its 1-best
        rejected = {
            level.name: f"no dev domain has the {MIN_DATASET} examples to judge it on" for level in levels
        }
        levels = ()
    for caution in levels:
        held_out = _held_out_results(replay, held_out_folds, caution)
        harmed = [
            name
            for name, (base, gated) in held_out.items()
            if _relative_gain(replay, base, gated) < -MIN_DOMAIN_GAIN - 1e-9
        ]
        if harmed:
            rejected[caution.name] = f"made {harmed[0]} worse"
            continue
        ranked, boldest, tried, trials = _ranked(replay, everything, caution)
        chosen, failure = _first_robust(replay, everything, ranked, trials)
        if chosen is not None:
            break
        rejected[caution.name] = failure
    else:
        caution, held_out = CLOSED, {}
        chosen, boldest, tried = _select(replay, everything, caution)
    curve = _risk_coverage(replay, arrays, _valve_failures(arrays, chosen[0]))
    return TaskTuning(
        task,
        replay.metric,
        len(rows),
        one_best,
        one_best_per_dataset,
        _trial(replay, chosen),
        _trial(replay, boldest),
        tried,
        curve,
        caution.name,
        held_out,
        rejected,
    )


def _units(rows: list[Row]) -> dict[str, np.ndarray]:
    """The groups of dev rows that may not get worse, each of at least `MIN_DATASET` rows: every domain
    and every named dataset within it (`modern/wordnet` within `modern`), so that a gain on one part of
    a domain cannot hide the damage to another."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        for name in {domain(row.example), row.example.dataset}:
            members[name].append(i)
    return {name: np.array(found) for name, found in sorted(members.items()) if len(found) >= MIN_DATASET}


def _judged(replay: _Replay) -> dict[str, np.ndarray]:
    return {name: indices for name, indices in replay.datasets.items() if len(indices) >= MIN_DATASET}


@dataclass(frozen=True)
class _Fold:
    """Every setting of the grid replayed on the rows at `indices` (familiarity quantiles of those rows):
    per grid point, its trial (rate, rule, choice, score) when no unit within the fold is harmed, else
    None. Computed once per fold; each caution level only filters it."""

    indices: np.ndarray
    one_best: float
    trials: list[tuple[tuple, tuple | None]]


def _fold(replay: _Replay, arrays: dict[str, np.ndarray], indices: np.ndarray) -> _Fold:
    closed = np.zeros(len(replay.rows), dtype=int)
    units = {name: rows for name, rows in replay.units.items() if np.isin(rows, indices).all()}
    baselines = {name: replay.score(closed, rows) for name, rows in units.items()}
    familiarity = arrays["familiarity"][indices]
    thresholds = {q: None if q is None else float(np.quantile(familiarity, q)) for q in FAMILIARITY_QUANTILES}
    trials = []
    grid = product(
        EDIT_RATES, ACCEPT_MARGINS, RERANK_MARGINS, (True, False), FAMILIARITY_QUANTILES, CONFIDENCES
    )
    for point in grid:
        rate, accept, rerank, support, quantile, confidence = point
        if accept is None and confidence is not None:
            continue
        rule = GateRule(accept, rerank, thresholds[quantile], support, confidence)
        choice = _choices(arrays, rate, rule).astype(np.int8)
        allowed = _no_domain_worse(replay, choice, units, baselines)
        trials.append((point, (rate, rule, choice, replay.score(choice, indices)) if allowed else None))
    return _Fold(indices, replay.score(closed, indices), trials)


def _held_out_results(
    replay: _Replay, folds: dict[str, _Fold], caution: Caution
) -> dict[str, tuple[float, float]]:
    """Leave-one-domain-out: per judged dev domain and each unit within it, (its 1-best, its score under
    the setting chosen without the domain), the stand-in for a domain the dev data does not show."""
    closed = np.zeros(len(replay.rows), dtype=int)
    results = {}
    for name, fold in folds.items():
        chosen, _, _ = _select(replay, fold, caution)
        for unit, rows in replay.units.items():
            if unit == name or unit.startswith(name + "/"):
                results[unit] = (replay.score(closed, rows), replay.score(chosen[2], rows))
    return results


def _select(replay: _Replay, fold: _Fold, caution: Caution):
    """(chosen, boldest, settings tried) among the settings of `fold` that `caution` admits."""
    ranked, boldest, tried, _ = _ranked(replay, fold, caution)
    return ranked[0], boldest, tried


def _ranked(replay: _Replay, fold: _Fold, caution: Caution):
    """(the settings `caution` admits that keep `KEEP_GAIN` of the best gain, most preferred first;
    the boldest; how many settings were tried; every admitted setting that harms no unit) on `fold`."""
    admitted = [
        trial
        for (_, accept, rerank, support, quantile, _), trial in fold.trials
        if caution.admits(accept, rerank, support, quantile)
    ]
    trials = [trial for trial in admitted if trial is not None]
    boldest = min(trials, key=lambda t: replay.sign * t[3])
    ranked = _preferred(replay, fold, trials, KEEP_GAIN * _gain(replay, fold, boldest))
    return ranked, boldest, len(admitted), trials


def _gain(replay: _Replay, fold: _Fold, trial) -> float:
    """How much better than the fold's 1-best a setting scores (in the metric's points)."""
    return replay.sign * (fold.one_best - trial[3])


def _preferred(replay: _Replay, fold: _Fold, trials: list, min_gain: float) -> list:
    """The settings gaining at least `min_gain`, most preferred first: the strictest familiarity,
    then the fewest outputs taken, then the strictest confidence, then the better score."""
    return sorted(
        (t for t in trials if _gain(replay, fold, t) >= min_gain),
        key=lambda t: (
            -_familiarity_strictness(t[1]),
            int((t[2][fold.indices] != 0).sum()),
            -_confidence_strictness(t[1]),
            replay.sign * t[3],
        ),
    )


def _familiarity_strictness(rule: GateRule) -> float:
    """How unfamiliar an input may be before the rule leaves it alone: the higher, the safer on domains
    that no dev set shows."""
    return -np.inf if rule.min_familiarity is None else rule.min_familiarity


def _confidence_strictness(rule: GateRule) -> float:
    """How sure of its output the model must be for the rule to take it (a rule that takes no output is
    the strictest): between settings that take the same dev outputs, the stricter takes fewer elsewhere."""
    if rule.accept_margin is None:
        return np.inf
    return -np.inf if rule.min_confidence is None else rule.min_confidence


def _no_domain_worse(
    replay: _Replay, choice: np.ndarray, units: dict[str, np.ndarray], baselines: dict[str, float]
) -> bool:
    """Whether every domain that the setting touches gains at least `MIN_DOMAIN_GAIN` of its 1-best,
    and no dataset within one loses more than that share (a unit left untouched passes)."""
    for name, indices in units.items():
        if not choice[indices].any():
            continue
        needed = MIN_DOMAIN_GAIN if name in replay.datasets else -MIN_DOMAIN_GAIN
        if _relative_gain(replay, baselines[name], replay.score(choice, indices)) < needed - 1e-9:
            return False
    return True


def _gains_by_chance(replay: _Replay, choice: np.ndarray) -> str | None:
    """Why the gain of `choice` may be luck, or None: the first dev domain it changes that does not beat
    its 1-best in `CONFIDENCE` of `BOOTSTRAP_SAMPLES` paired bootstrap resamples of the domain's rows.
    A handful of lucky edits clears the 1% bar on a small dev set and then loses on the test file."""
    for name, indices in _judged(replay).items():
        if not choice[indices].any():
            continue
        wins = replay.bootstrap_wins(name, indices, choice)
        if wins < CONFIDENCE * BOOTSTRAP_SAMPLES:
            return f"gained on {name} in only {wins / BOOTSTRAP_SAMPLES:.0%} of bootstrap resamples"
    return None


def _first_robust(
    replay: _Replay, fold: _Fold, ranked: list, trials: list
) -> tuple[tuple | None, str | None]:
    """The first of the `ROBUST_CANDIDATES` most preferred settings whose gains hold under resampling
    (`_gains_by_chance`). When none does, the level's best gains were luck, and it is judged by the
    largest gain that holds instead: the most preferred of the settings that keep `KEEP_GAIN` of it
    and hold. None, with why the first preferred setting did not hold, when no gain holds."""
    first_failure = None
    for trial in ranked[:ROBUST_CANDIDATES]:
        failure = _gains_by_chance(replay, trial[2])
        if failure is None:
            return trial, None
        first_failure = first_failure or failure
    held = _largest_gain_that_holds(replay, fold, trials)
    if held is not None:
        for trial in _preferred(replay, fold, trials, KEEP_GAIN * held):
            if _gains_by_chance(replay, trial[2]) is None:
                return trial, None
    shown = min(len(ranked), ROBUST_CANDIDATES)
    return None, f"{first_failure}; none of its {shown} preferred settings held, nor any smaller gain"


def _largest_gain_that_holds(replay: _Replay, fold: _Fold, trials: list) -> float | None:
    """The largest positive gain on `fold` of a setting whose gains hold under resampling, or None.
    Settings are tried by gain, each distinct choice of outputs once."""
    seen: set[bytes] = set()
    for trial in sorted(trials, key=lambda t: -_gain(replay, fold, t)):
        gain = _gain(replay, fold, trial)
        if gain <= 0:
            return None
        key = trial[2].tobytes()
        if key not in seen:
            seen.add(key)
            if _gains_by_chance(replay, trial[2]) is None:
                return gain
    return None


def _relative_gain(replay: _Replay, one_best: float, score: float) -> float:
    """The improvement of `score` over `one_best`, as a share of the 1-best (negative: worse)."""
    return replay.sign * (one_best - score) / max(abs(one_best), 1e-9)


def _trial(replay: _Replay, trial) -> GateTrial:
    rate, rule, choice, score = trial
    taken = Counter(CHOICES[k] for k in choice)
    return GateTrial(rate, rule, score, replay.per_dataset(choice), dict(taken))


def _arrays(rows: list[Row]) -> dict[str, np.ndarray]:
    evidence = [row.evidence for row in rows]
    return {
        "margin": np.array([e.margin for e in evidence]),
        "rerank_margin": np.array([e.rerank_margin for e in evidence]),
        "familiarity": np.array([e.familiarity for e in evidence]),
        "confidence": np.array([e.confidence for e in evidence]),
        "supported": np.array([e.supported for e in evidence]),
        "degenerate": np.array([e.valve_reason is not None for e in evidence]),
        "changed": np.array([e.output != e.best for e in evidence]),
        "pick_differs": np.array([e.pick != e.best for e in evidence]),
        "needed_rate": np.array([row.needed_edit_rate for row in rows]),
    }


def _valve_failures(arrays: dict[str, np.ndarray], rate: float | None) -> np.ndarray:
    if rate is None:
        return arrays["degenerate"]
    return arrays["degenerate"] | (arrays["needed_rate"] > rate)


def _choices(arrays: dict[str, np.ndarray], rate: float | None, rule: GateRule) -> np.ndarray:
    """`GateRule.decide` over all rows at once, as indices into `CHOICES`."""
    valve_failed = _valve_failures(arrays, rate)
    familiar = (
        np.ones_like(valve_failed)
        if rule.min_familiarity is None
        else arrays["familiarity"] >= rule.min_familiarity
    )
    take_model = ~valve_failed & arrays["changed"] & familiar
    if rule.accept_margin is None:
        take_model &= False
    else:
        take_model &= arrays["margin"] >= rule.accept_margin
    if rule.min_confidence is not None:
        take_model &= arrays["confidence"] >= rule.min_confidence
    if rule.require_support:
        take_model &= arrays["supported"]
    unchanged = ~valve_failed & ~arrays["changed"]
    take_rerank = ~take_model & ~unchanged & familiar & arrays["pick_differs"]
    if rule.rerank_margin is None:
        take_rerank &= False
    else:
        take_rerank &= arrays["rerank_margin"] >= rule.rerank_margin
    return np.where(take_model, 2, np.where(take_rerank, 1, 0))


def _risk_coverage(
    replay: _Replay, arrays: dict[str, np.ndarray], valve_failed: np.ndarray, points: int = 21
) -> list[tuple[float, float]]:
    """(coverage, metric) when the most confident share of the changed outputs that pass the valve
    is taken, by margin, and the 1-best elsewhere."""
    candidates = np.flatnonzero(~valve_failed & arrays["changed"])
    order = candidates[np.argsort(-arrays["margin"][candidates], kind="stable")]
    curve = []
    for step in range(points):
        share = step / (points - 1)
        choice = np.zeros(len(replay.rows), dtype=int)
        choice[order[: round(share * len(order))]] = 2
        curve.append((share, replay.score(choice)))
    return curve


def risk_coverage(task: str, rows: list[Row], scorer: Scorer) -> tuple[str, list[tuple[float, float]]]:
    """(metric, curve) of rows whose evidence holds the valve's verdict as applied."""
    replay = _Replay(task, rows, scorer)
    arrays = _arrays(rows)
    return replay.metric, _risk_coverage(replay, arrays, _valve_failures(arrays, None))


def save_gate_settings(model_dir: str | Path, tunings: dict[str, TaskTuning]) -> None:
    """Write the tuned edit limits and gate rules into the model directory's `neko.json` (other tasks
    keep theirs)."""
    info = read_model_info(Path(model_dir))
    rates = dict(info.max_edit_rate) | {task: t.best.max_edit_rate for task, t in tunings.items()}
    rules = dict(info.gate) | {task: t.best.rule for task, t in tunings.items()}
    write_model_info(model_dir, info.model_copy(update={"max_edit_rate": rates, "gate": rules}))


def describe_rule(rule: GateRule, rate: float | None) -> str:
    """One line of a rule, for tables."""

    def number(value: float | None) -> str:
        return "off" if value is None else f"{value:g}"

    support = "supported" if rule.require_support else "any"
    return (
        f"edit<={number(rate)} accept>={number(rule.accept_margin)} rerank>={number(rule.rerank_margin)} "
        f"familiarity>={number(None if rule.min_familiarity is None else round(rule.min_familiarity, 3))} "
        f"confidence>={number(rule.min_confidence)} {support}"
    )
