"""Prompts as token ids, fitted to the model's source budget.

A prompt longer than `max_source_tokens` is shortened in two steps, keeping what matters most:
first the worst hypotheses are dropped (the N-best is ordered best first), as many as needed; if the
best hypothesis alone is still too long, its text is cut at the end. Prompts are tokenized whole,
without BOS/EOS (`add_special_tokens=False`): the markers in the text are the model's special tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from neko.errors import NekoError
from neko.tasks import Task


@dataclass(frozen=True)
class Prompt:
    """Token ids of one prompt; `kept` hypotheses made it in, `cut` says the best one was shortened."""

    ids: list[int]
    kept: int
    total: int
    cut: bool = False

    @property
    def truncated(self) -> bool:
        return self.cut or self.kept < self.total


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def decode(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def decode_start(tokenizer, ids: Sequence[int]) -> str:
    """The text that every output beginning with `ids` begins with, once stripped: their decoding,
    stripped, less the replacement characters of a character whose bytes are still to come (a
    byte-level token may end inside one)."""
    return decode(tokenizer, ids).rstrip("\ufffd").strip()


def build_prompt(
    tokenizer, task: Task, hypotheses: Sequence[str], style: str, max_tokens: int | None
) -> Prompt:
    """The prompt of `hypotheses`, at most `max_tokens` long (None: no limit)."""
    total = len(hypotheses)
    ids = encode(tokenizer, task.render_prompt(hypotheses, style))
    if max_tokens is None or len(ids) <= max_tokens:
        return Prompt(ids, total, total)
    # The longest prefix of the N-best that fits (prompt length grows with the count): binary search.
    fits, low, high = None, 1, total - 1
    while low <= high:
        middle = (low + high) // 2
        candidate = encode(tokenizer, task.render_prompt(hypotheses[:middle], style))
        if len(candidate) <= max_tokens:
            fits, low = (candidate, middle), middle + 1
        else:
            high = middle - 1
    if fits is not None:
        return Prompt(fits[0], fits[1], total)
    return Prompt(_cut_best(tokenizer, task, hypotheses[0], style, max_tokens), 1, total, cut=True)


def _cut_best(tokenizer, task: Task, best: str, style: str, max_tokens: int) -> list[int]:
    overhead = len(encode(tokenizer, task.render_prompt([""], style)))
    if overhead > max_tokens:
        raise NekoError(
            f"max_source_tokens={max_tokens} is shorter than the empty prompt of task {task.name!r} "
            f"({overhead} tokens)"
        )
    best_ids = encode(tokenizer, best)
    keep = min(len(best_ids), max_tokens - overhead)
    while True:
        ids = encode(tokenizer, task.render_prompt([decode(tokenizer, best_ids[:keep])], style))
        if len(ids) <= max_tokens or keep <= 0:
            return ids
        keep = max(0, keep - max(1, len(ids) - max_tokens))
