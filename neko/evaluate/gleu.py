"""GLEU, the official metric of JFLEG, compatible with its reference script.

There is no maintained package for GLEU, so this is a re-implementation of `eval/gleu.py` of the JFLEG
repository (keisks/jfleg; Napoles, Sakaguchi, Post and Tetreault, ACL 2015, "Ground Truth for
Grammatical Error Correction Metrics", in the version "updated 2 May 2016 ... to handle multiple
references more fairly" used by the JFLEG paper, Napoles, Sakaguchi and Tetreault, EACL 2017).

What is matched, point by point:

- Tokens are `str.split()` of each line: no lower-casing or re-tokenisation (JFLEG is pre-tokenised).
- n-gram orders 1..4, always 4 (the script's `-n` option is ignored by the script itself).
- Per sentence and reference r, for each order n, with H, S, R the n-gram count multisets of hypothesis,
  source and r: numerator = max(|H ∩ R| - |H ∩ (S \\ R)|, 0), where `∩` is the multiset minimum and
  `S \\ R` keeps the source n-grams whose *type* does not occur in R at all (with their full counts);
  denominator = max(len(hyp) + 1 - n, 0). Lengths: c = len(hyp), r = len(reference).
- Corpus GLEU of one set of statistics (summed over sentences): 0 when any statistic is 0, else
  exp(min(0, 1 - r / c) + mean over n of log(numerator_n / denominator_n)).
- Multiple references: one reference is drawn per sentence for each of 500 iterations; the drawing of
  iteration j seeds Python's Mersenne Twister with `j * 101` and draws one index per sentence in order.
  The script ran under Python 2, whose `random.randint(0, k - 1)` is `int(random() * k)`; that is what
  is done here (Python 3's `randint` draws differently from the same seed). The score is the mean of
  the 500 corpus GLEUs; the script also prints their standard deviation and a normal 95% interval.
- Sentence-level GLEU (the script's `--sent`) is the mean over references of the smoothed sentence
  GLEU, where zero statistics are replaced by 1.

One generalisation: the script assumes every sentence has the same number of references; here a
sentence may have any number (at least one) and draws among its own. With equal counts the drawing is
the script's. Scores are fractions in [0, 1]; reports show them times 100, as the JFLEG paper does.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neko.errors import NekoError
from neko.evaluate import GLEU_ITERATIONS

ORDER = 4


@dataclass(frozen=True)
class GleuResult:
    """Mean corpus GLEU over the reference-sampling iterations, its spread and normal 95% interval."""

    score: float
    std: float
    ci_low: float
    ci_high: float
    iterations: int


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) + 1 - n))


def sentence_stats(source: str, hypothesis: str, reference: str) -> list[int]:
    """The script's `gleu_stats`: [c, r, num_1, den_1, ..., num_4, den_4] for one reference."""
    src, hyp, ref = source.split(), hypothesis.split(), reference.split()
    stats = [len(hyp), len(ref)]
    for n in range(1, ORDER + 1):
        h_ngrams, s_ngrams, r_ngrams = _ngrams(hyp, n), _ngrams(src, n), _ngrams(ref, n)
        s_diff = Counter({k: v for k, v in s_ngrams.items() if k not in r_ngrams})
        numerator = sum((h_ngrams & r_ngrams).values()) - sum((h_ngrams & s_diff).values())
        stats.append(max(numerator, 0))
        stats.append(max(len(hyp) + 1 - n, 0))
    return stats


def gleu_from_stats(stats: Sequence[float], smooth: bool = False) -> float:
    """The script's `gleu`: GLEU of (summed) statistics; smoothing replaces zeros by 1."""
    if smooth:
        stats = [s if s != 0 else 1 for s in stats]
    if any(s == 0 for s in stats):
        return 0.0
    c, r = stats[0], stats[1]
    log_precision = sum(math.log(x / y) for x, y in zip(stats[2::2], stats[3::2], strict=True)) / ORDER
    return math.exp(min(0.0, 1.0 - r / c) + log_precision)


def sample_reference_indices(ref_counts: Sequence[int], iterations: int = GLEU_ITERATIONS) -> np.ndarray:
    """The reference drawn for each (iteration, sentence), as the Python 2 script draws it."""
    indices = np.empty((iterations, len(ref_counts)), dtype=np.int64)
    for j in range(iterations):
        rng = random.Random(j * 101)
        indices[j] = [int(rng.random() * k) for k in ref_counts]
    return indices


def _check(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if not (len(sources) == len(hypotheses) == len(references)):
        raise NekoError(
            f"GLEU needs one source and one reference list per hypothesis; got {len(sources)} sources, "
            f"{len(hypotheses)} hypotheses and {len(references)} reference lists"
        )
    for i, refs in enumerate(references):
        if not refs:
            raise NekoError(f"GLEU: sentence {i} has no reference")


def corpus_gleu(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    iterations: int = GLEU_ITERATIONS,
) -> GleuResult:
    """Corpus GLEU of `hypotheses` given their `sources` and one or more `references` each."""
    _check(sources, hypotheses, references)
    if not hypotheses:
        raise NekoError("GLEU of an empty corpus is undefined")
    width = 2 * ORDER + 2
    max_refs = max(len(refs) for refs in references)
    # stats[i, k]: statistics of sentence i against its k-th reference (rows past its count unused).
    stats = np.zeros((len(hypotheses), max_refs, width), dtype=np.int64)
    for i, (src, hyp, refs) in enumerate(zip(sources, hypotheses, references, strict=True)):
        for k, ref in enumerate(refs):
            stats[i, k] = sentence_stats(src, hyp, ref)
    indices = sample_reference_indices([len(refs) for refs in references], iterations)
    rows = np.arange(len(hypotheses))
    totals = np.stack([stats[rows, indices[j]].sum(axis=0) for j in range(iterations)])
    scores = np.array([gleu_from_stats(t.tolist()) for t in totals])
    mean, std = float(scores.mean()), float(scores.std())
    # scipy.stats.norm.interval(0.95, loc=mean, scale=std), without needing scipy.
    half = 1.959963984540054 * std
    return GleuResult(mean, std, mean - half, mean + half, iterations)


def sentence_gleu(source: str, hypothesis: str, references: Sequence[str]) -> float:
    """The script's sentence-level GLEU: mean over references of the smoothed GLEU."""
    if not references:
        raise NekoError("GLEU: a sentence needs at least one reference")
    values = [gleu_from_stats(sentence_stats(source, hypothesis, r), smooth=True) for r in references]
    return sum(values) / len(values)
