"""Drafts for copy-aware decoding: what a correction will probably write next, looked up in its
hypotheses (prompt lookup). A correction mostly copies one of its hypotheses, so the tokens that
follow the output's last few tokens in a hypothesis are a good guess; the engines check a whole draft
in one forward pass and keep its longest prefix that greedy search would have written. No torch here:
every engine drafts alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from neko.correct.lm import Generated, Hopeless

DRAFT_TOKENS = 8
"""Most tokens drafted per row and step: a draft that is wrong costs its width in the next pass."""
NGRAM = 3
"""Longest output suffix looked up in the hypotheses (shorter ones are tried when it is not found)."""
_START = -1
"""Stands before each copy source and the output, so that an output that has just begun drafts the
start of a hypothesis."""


def copy_sources(prompt: Sequence[int], separators: Sequence[int], eos_id: int) -> list[list[int]]:
    """The runs of `prompt` between separator ids (its markers: one run per hypothesis), each ended by
    `eos_id`, as an output that copies a hypothesis ends where it does."""
    breaks = set(separators)
    sources: list[list[int]] = []
    run: list[int] = []
    for token in prompt:
        if token in breaks:
            if run:
                sources.append([*run, eos_id])
            run = []
        else:
            run.append(token)
    if run:
        sources.append([*run, eos_id])
    return sources


class PromptLookup:
    """Drafts for one row: what follows the longest suffix of the output (up to `ngram` tokens) in the
    row's copy sources; of several places, the first (the best-ranked hypothesis)."""

    def __init__(self, sources: Sequence[Sequence[int]], ngram: int = NGRAM) -> None:
        self.ngram = ngram
        self.index: dict[tuple[int, ...], tuple[int, int]] = {}
        self.sources = [[_START, *source] for source in sources]
        for s, source in enumerate(self.sources):
            for end in range(1, len(source)):
                for n in range(1, min(ngram, end) + 1):
                    self.index.setdefault(tuple(source[end - n : end]), (s, end))

    def draft(self, output: Sequence[int], limit: int) -> list[int]:
        """Up to `limit` tokens to follow `output`; failing the sources, the loop that ends `output`
        continued: from the latest earlier occurrence of its last tokens, what followed, repeated with
        the loop's period (a degenerate output that repeats itself drafts its whole repetition)."""
        if limit <= 0:
            return []
        history = [_START, *output[-self.ngram :]]
        for n in range(min(self.ngram, len(history)), 0, -1):
            found = self.index.get(tuple(history[-n:]))
            if found is not None:
                s, end = found
                return self.sources[s][end : end + limit]
        for n in range(min(self.ngram, len(output) - 1), 0, -1):
            suffix = list(output[-n:])
            for start in range(len(output) - n - 1, -1, -1):
                if list(output[start : start + n]) == suffix:
                    loop = list(output[start + n :])
                    return [loop[i % len(loop)] for i in range(limit)]
        return []


@dataclass
class DraftRow:
    """A row still being decoded: its place in the batch, the tokens it has, its drafter, and what
    says when it is not worth finishing (`Hopeless`)."""

    index: int
    lookup: PromptLookup
    hopeless: Hopeless | None = None
    tokens: list[int] = field(default_factory=list)
    finished: bool = False
    abandoned: bool = False

    def take(self, new: Sequence[int], eos_id: int, max_new_tokens: int) -> None:
        """Add accepted tokens, stopping at the end marker or the length limit; then abandon the row
        if it has become hopeless."""
        for token in new:
            if len(self.tokens) >= max_new_tokens:
                break
            if token == eos_id:
                self.finished = True
                return
            self.tokens.append(token)
        if self.hopeless is not None and self.tokens and self.hopeless(self.index, self.tokens):
            self.abandoned = True

    def done(self, max_new_tokens: int) -> bool:
        return self.finished or self.abandoned or len(self.tokens) >= max_new_tokens

    def result(self) -> Generated:
        return Generated(self.tokens, self.finished, self.abandoned)
