"""The safety valve: keep the recognizer's 1-best when the model's correction looks degenerate.

A correction model that fails tends to fail loudly: it stops at once, loops, or rambles on. Such an
output is worse than the hypothesis it was meant to fix, so it is replaced by the 1-best. An output is
degenerate (`SafetyValve.check` returns the reason) when it is

- `unfinished`: generation hit `max_new_tokens` before the end marker;
- `empty`: nothing but whitespace;
- `looping`: a run of one word n-gram (n <= 8 words) repeated `max_word_repeats` (3) or more times
  back to back, or of one character unit (<= 10 characters) repeated 4 or more times over at least
  `min_loop_chars` (16) characters, *and* a longer run than the 1-best has (so "no no no" that the
  recognizer heard is kept);
- `too short` / `too long`: its length in characters (both stripped) is below
  `min_ratio * len(best) - length_slack` or above `max_ratio * len(best) + length_slack`, with
  `min_ratio` 0.5, `max_ratio` 2.0 and `length_slack` 5 characters (the slack lets short inputs such
  as "hi" -> "hello" through);
- `unrelated`: even the closest hypothesis needs more than `max_edit_rate * len(hypothesis) +
  length_slack` character edits to become the output (0.5: more than half of it would change).
  A correction edits what the recognizer produced; an output that shares little with every
  hypothesis is the language model writing its own sentence (small or undertrained models do
  this), not a correction. None disables the check, e.g. for tasks whose outputs may legitimately
  rewrite most of the input.

Some refusals are certain before an output is finished (`SafetyValve.certain_refusal`): one already
too long, or already too far from every hypothesis, stays so whatever follows. The decoder stops
writing such a row (`neko.correct.lm.Hopeless`): its correction is the 1-best either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

REASONS = ("unfinished", "empty", "looping", "too short", "too long", "unrelated")


@dataclass(frozen=True)
class SafetyValve:
    """Thresholds of the degeneracy check (see the module documentation)."""

    min_ratio: float = 0.5
    max_ratio: float = 2.0
    length_slack: int = 5
    max_word_ngram: int = 8
    max_word_repeats: int = 3
    max_char_unit: int = 10
    min_char_repeats: int = 4
    min_loop_chars: int = 16
    max_edit_rate: float | None = 0.5

    def check(
        self, output: str, best: str, finished: bool = True, hypotheses: Sequence[str] = ()
    ) -> str | None:
        """Why `output` should be replaced by the 1-best `best`, or None when it can stay.
        `hypotheses` (all of them, `best` included) are what `unrelated` compares with."""
        if not finished:
            return "unfinished"
        output, best = output.strip(), best.strip()
        if not output:
            return "empty"
        if self.word_run(output) >= self.max_word_repeats and self.word_run(output) > self.word_run(best):
            return "looping"
        if self.char_run(output) >= self.min_char_repeats and self.char_run(output) > self.char_run(best):
            return "looping"
        if len(output) < self.min_ratio * len(best) - self.length_slack:
            return "too short"
        if len(output) > self.max_ratio * len(best) + self.length_slack:
            return "too long"
        if self.max_edit_rate is not None and self.unrelated(output, [best, *hypotheses]):
            return "unrelated"
        return None

    def certain_refusal(self, prefix: str, best: str, hypotheses: Sequence[str] = ()) -> str | None:
        """Why `check` refuses every output that begins with `prefix` (stripped), whatever follows:
        `too long` or `unrelated` (`check` may name another reason first); None while some
        continuation might pass. An output takes at least as many character edits from a hypothesis
        as its prefix takes from the nearest start of that hypothesis."""
        prefix, best = prefix.strip(), best.strip()
        if not prefix:
            return None
        if len(prefix) > self.max_ratio * len(best) + self.length_slack:
            return "too long"
        if self.max_edit_rate is None:
            return None
        references = [h for h in (best, *hypotheses) if h.strip()]
        for reference in references:
            allowed = int(self.max_edit_rate * len(reference) + self.length_slack)
            if _near_some_start(reference.strip(), prefix, allowed):
                return None
        return "unrelated" if references else None

    def needed_edit_rate(self, output: str, hypotheses: Sequence[str]) -> float:
        """The smallest `max_edit_rate` at which `output` is not `unrelated` to `hypotheses`."""
        rates = [(_char_edits(h, output) - self.length_slack) / len(h) for h in hypotheses if h.strip()]
        return max(0.0, min(rates, default=0.0))

    def unrelated(self, output: str, hypotheses: Sequence[str]) -> bool:
        allowed = (self.max_edit_rate * len(h) + self.length_slack for h in hypotheses if h.strip())
        counts = [_char_edits(h, output) for h in hypotheses if h.strip()]
        return bool(counts) and all(c > a for c, a in zip(counts, allowed, strict=True))

    def word_run(self, text: str) -> int:
        """The longest back-to-back repetition of a word n-gram (n <= `max_word_ngram`) in `text`."""
        words = text.lower().split()
        return max((longest_run(words, n) for n in range(1, self.max_word_ngram + 1)), default=0)

    def char_run(self, text: str) -> int:
        """The longest back-to-back repetition of a character unit (<= `max_char_unit` long) that spans
        at least `min_loop_chars` characters; 0 when there is none."""
        runs = (longest_run(text, n) for n in range(1, self.max_char_unit + 1))
        return max((r for n, r in enumerate(runs, start=1) if r * n >= self.min_loop_chars), default=0)


def _char_edits(reference: str, output: str) -> int:
    """Character edits (Levenshtein) that turn `reference` into `output`, both stripped."""
    return Levenshtein.distance(reference.strip(), output.strip())


def _near_some_start(reference: str, prefix: str, allowed: int) -> bool:
    """Whether some start `reference[:j]` is at most `allowed` character edits from `prefix`. Only
    starts within `allowed` characters of the prefix's length can be; they are tried nearest first."""
    for shift in range(allowed + 1):
        for j in {len(prefix) - shift, len(prefix) + shift}:
            if (
                0 <= j <= len(reference)
                and Levenshtein.distance(reference[:j], prefix, score_cutoff=allowed) <= allowed
            ):
                return True
    return False


def longest_run(items: Sequence, unit: int) -> int:
    """The most times any `unit` consecutive items repeat back to back in `items` (1 if none repeats)."""
    best = 1 if len(items) >= unit else 0
    for phase in range(unit):
        run = 1
        for start in range(phase, len(items) - 2 * unit + 1, unit):
            if items[start : start + unit] == items[start + unit : start + 2 * unit]:
                run += 1
                best = max(best, run)
            else:
                run = 1
    return best
