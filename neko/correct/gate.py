"""The correction gate: per example, may the model's output replace the recognizer's 1-best?

A corrector that is wrong costs more than one that abstains, so the model's output has to earn its
place. The gate sees, per example, what the model already knows (`Evidence`):

- `margin`: how much more likely the model finds its output than the 1-best (mean token
  log-probability of each as the answer to the prompt). A fix the model is sure of has a clear margin;
  an output it merely prefers by a hair is a coin toss.
- `familiarity`: the mean token log-probability the model gives the prompt as text (every hypothesis
  it shows, the special markers left out): how much the input looks like what it was trained on. A
  model that has never seen a domain "corrects" it towards the domains it knows, fluently and
  wrongly; low familiarity is the warning.
- `supported`: every span the output changes also occurs in another hypothesis (with a word of
  context). N-best lists hold most real fixes; a change no hypothesis proposes is the model's
  invention.
- `rerank_margin`: the same margin for the hypothesis the model finds most likely.
- `confidence`: the mean token log-probability of the output itself as the answer: how sure the
  model is of what it wrote, whatever the 1-best. An output it is unsure of may still beat a garbled
  1-best by a wide margin; on a domain it knows, it writes its fixes with near-certainty.

Three outcomes, tried in order: the model's output (`model`), when the degeneracy checks of the
safety valve pass, the change is supported (where required), the input is familiar enough, its
margin reaches `accept_margin` and its confidence `min_confidence` (the first check that fails is
the reason given); else the rerank pick (`rerank`), when its margin reaches `rerank_margin` on a
familiar input; else the 1-best (`1-best`). An output equal to the 1-best is `unchanged`. A margin
of None disables that outcome.

Thresholds are not guessed: `neko tune-gate` measures them per task on dev data (selective
prediction: the risk of each coverage, `neko.correct.tuning.risk_coverage`), under the constraint that
every dev domain whose outputs a setting changes gains clearly over its 1-best (`neko.correct.tuning`),
and stores them in `neko.json`. A task without tuned thresholds keeps the
1-best (`GateRule.closed`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

RERANK_BOUND_SLACK = 1e-4
"""Rounding room for `GateRule.may_rerank`'s bound (a log-probability is at most 0, up to rounding)."""
DECISIONS = ("model", "unchanged", "rerank", "1-best")
"""What a correction's text is: the model's output, the model's output equal to the 1-best, the
hypothesis the model ranks first, or the 1-best kept by the gate."""


@dataclass(frozen=True)
class Evidence:
    """What the gate decides on, for one example (see the module documentation)."""

    output: str
    best: str
    pick: str
    margin: float
    rerank_margin: float
    familiarity: float
    supported: bool
    confidence: float
    valve_reason: str | None = None


@dataclass(frozen=True)
class GateRule:
    """The thresholds of one task; None disables the outcome (see the module documentation)."""

    accept_margin: float | None = None
    rerank_margin: float | None = None
    min_familiarity: float | None = None
    require_support: bool = True
    min_confidence: float | None = None

    @classmethod
    def closed(cls) -> GateRule:
        """Keep every 1-best: the rule of a task whose gate was never tuned."""
        return cls()

    @classmethod
    def open(cls) -> GateRule:
        """Take every output the safety valve passes: the behaviour without a gate."""
        return cls(accept_margin=-math.inf, require_support=False)

    @property
    def uses_output(self) -> bool:
        """Whether the model's output can change a decision: not under a closed rule, which keeps
        every 1-best."""
        return self.accept_margin is not None or self.rerank_margin is not None

    def decide(self, evidence: Evidence) -> tuple[str, str | None]:
        """(decision, reason): one of `DECISIONS`, and why the model's output was not taken."""
        if evidence.valve_reason is None and evidence.output == evidence.best:
            return "unchanged", None
        reason = evidence.valve_reason or self._refusal(evidence)
        if reason is None:
            return "model", None
        if (
            self.rerank_margin is not None
            and evidence.pick != evidence.best
            and evidence.rerank_margin >= self.rerank_margin
            and self._familiar(evidence)
        ):
            return "rerank", reason
        return "1-best", reason

    def scored_texts(self, output: str, hypotheses: Sequence[str], valve_reason: str | None) -> list[str]:
        """What `decide` needs scored first for `output`: nothing where no score can change the
        decision (an unchanged output; with reranking off, a closed gate, an output the valve refused
        or an edit the rule requires support for and no hypothesis supports), else the output and the
        1-best where the output may be accepted, the 1-best alone where only a rerank may follow.
        Every hypothesis is scored afterwards only where a rerank is still possible (`may_rerank`)."""
        if valve_reason is None and output == hypotheses[0]:
            return []
        accepting = (
            valve_reason is None
            and self.accept_margin is not None
            and (not self.require_support or supported(output, hypotheses))
        )
        if accepting:
            return [output, hypotheses[0]]
        return [hypotheses[0]] if self.rerank_margin is not None else []

    def may_rerank(self, evidence: Evidence, best_score: float) -> bool:
        """Whether scoring every hypothesis could turn `evidence` (its output and 1-best scored only)
        into a rerank: the output is refused, the input familiar, and the 1-best's mean token
        log-probability `best_score` at most -`rerank_margin`, since no hypothesis's can exceed 0."""
        if self.rerank_margin is None or not self._familiar(evidence):
            return False
        if self.decide(evidence)[0] in ("model", "unchanged"):
            return False
        return best_score <= -self.rerank_margin + RERANK_BOUND_SLACK

    def _refusal(self, evidence: Evidence) -> str | None:
        if self.accept_margin is None:
            return "gate closed"
        if self.require_support and not evidence.supported:
            return "unsupported edit"
        if not self._familiar(evidence):
            return "unfamiliar input"
        if not evidence.margin >= self.accept_margin:  # a NaN margin is low, as in tuning's replay
            return "low margin"
        if self.min_confidence is not None and not evidence.confidence >= self.min_confidence:
            return "low confidence"
        return None

    def _familiar(self, evidence: Evidence) -> bool:
        return self.min_familiarity is None or evidence.familiarity >= self.min_familiarity

    def to_dict(self) -> dict[str, float | bool | None]:
        return {
            "accept_margin": self.accept_margin,
            "rerank_margin": self.rerank_margin,
            "min_familiarity": self.min_familiarity,
            "require_support": self.require_support,
            "min_confidence": self.min_confidence,
        }


def choose(evidence: Evidence, decision: str) -> str:
    """The text a decision stands for."""
    if decision in ("model", "unchanged"):
        return evidence.output
    return evidence.pick if decision == "rerank" else evidence.best


def supported(output: str, hypotheses: Sequence[str]) -> bool:
    """Whether every span where `output` differs from the 1-best (`hypotheses[0]`), with one word of
    context on each side, occurs word for word in some hypothesis."""
    best, words = hypotheses[0].split(), output.split()
    others = [f" {' '.join(h.split())} " for h in hypotheses[1:]]
    matcher = difflib.SequenceMatcher(a=best, b=words, autojunk=False)
    for tag, _, _, start, end in matcher.get_opcodes():
        if tag == "equal":
            continue
        span = " ".join(words[max(0, start - 1) : end + 1])
        if not any(f" {span} " in other for other in others):
            return False
    return True
