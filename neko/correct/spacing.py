"""An output written in its input's tokenization: spaced punctuation and split clitics kept.

Benchmarks of written text (JFLEG, CoNLL-2014, BEA) are tokenized the Penn Treebank way: "car .",
"do n't", "( like this )", and so are their references. The models learn from plain text, so they
write "car." and "don't" even where they copy a tokenized input, and every such sentence then
differs from its references by its spacing alone. The input shows which convention it follows
(`Spacing.of`); `match_spacing` writes the output in it. Only tokens of the output that the input
does not have verbatim are touched, so what was copied ("etc." in a tokenized sentence) stays as it
was; untokenized input (what recognizers write) leaves the output alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PUNCTUATION = ".,!?;:"
OPENERS = '("'
CLOSERS = ')"'
CLITIC = r"(?:n't|'s|'re|'m|'ve|'ll|'d)"
_PUNCTUATION_RUN = re.compile(rf"[{PUNCTUATION}]+")
_ATTACHED_PUNCTUATION = re.compile(rf".*[^\s{PUNCTUATION}][{PUNCTUATION}]+")
_STANDALONE_CLITIC = re.compile(CLITIC, re.IGNORECASE)
_ATTACHED_CLITIC = re.compile(rf".*\w{CLITIC}[{PUNCTUATION}]*", re.IGNORECASE)
_SPLIT_CLITIC = re.compile(rf"(.*\w)({CLITIC})", re.IGNORECASE)


@dataclass(frozen=True)
class Spacing:
    """The conventions of a text: punctuation, brackets and quotes as tokens of their own
    (`spaced_punctuation`), clitics such as "n't" and "'s" split from their word (`split_clitics`)."""

    spaced_punctuation: bool = False
    split_clitics: bool = False

    @classmethod
    def of(cls, text: str) -> Spacing:
        """The conventions `text` follows more often than it breaks them."""
        tokens = text.split()
        return cls(
            spaced_punctuation=_count(tokens, _PUNCTUATION_RUN) > _count(tokens, _ATTACHED_PUNCTUATION),
            split_clitics=_count(tokens, _STANDALONE_CLITIC) > _count(tokens, _ATTACHED_CLITIC),
        )

    def split(self, token: str) -> list[str]:
        """`token` written in these conventions: itself, or the tokens it separates into."""
        head: list[str] = []
        tail: list[str] = []
        core = token
        if self.spaced_punctuation:
            while len(core) > 1 and core[0] in OPENERS:
                head, core = [*head, core[0]], core[1:]
            while core and not _PUNCTUATION_RUN.fullmatch(core):
                run = re.search(rf"[{PUNCTUATION}]+$", core)
                mark = run.group() if run else core[-1] if core[-1] in CLOSERS else ""
                if not mark or len(mark) == len(core):
                    break
                core, tail = core[: -len(mark)], [mark, *tail]
        if self.split_clitics and (clitic := _SPLIT_CLITIC.fullmatch(core)):
            core = f"{clitic.group(1)} {clitic.group(2)}"
        return [*head, *core.split(), *tail]


def _count(tokens: Sequence[str], pattern: re.Pattern) -> int:
    return sum(1 for token in tokens if pattern.fullmatch(token))


def respace(tokens: Sequence[str], source: str, spacing: Spacing | None = None) -> list[str]:
    """`tokens` (an output split at spaces) in the tokenization of `source` (`spacing`: its
    conventions, when already read); the ones `source` has verbatim are kept as they are."""
    spacing = Spacing.of(source) if spacing is None else spacing
    if spacing == Spacing():
        return list(tokens)
    known = set(source.split())
    return [piece for token in tokens for piece in ([token] if token in known else spacing.split(token))]


def match_spacing(output: str, source: str) -> str:
    """`output` in the tokenization of `source`; unchanged when `source` is not tokenized."""
    spacing = Spacing.of(source)
    if spacing == Spacing():
        return output
    return " ".join(respace(output.split(), source, spacing))


def match_spacing_start(start: str, source: str, spacing: Spacing | None = None) -> str:
    """The beginning of every output that begins with `start` (one still being written), once
    matched to `source`: `start` itself when `source` is not tokenized; else its tokens but the last,
    which may be the beginning of a word whose spacing is still to be decided ("don" of "do n't").
    `spacing`: `Spacing.of(source)` when the caller has it (a check run at every decoding step)."""
    spacing = Spacing.of(source) if spacing is None else spacing
    if spacing == Spacing():
        return start
    return " ".join(respace(start.split()[:-1], source, spacing))
