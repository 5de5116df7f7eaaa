"""What an engine's language model does for the `Corrector`, whatever runs it (torch, ONNX Runtime).

`LanguageModel` is the interface: greedy (or beam) continuations of token-id prompts, and the
log-likelihood of given answers after each prompt. `Generated` and `PromptScores` are its results;
`length_batches` groups work by length so that little is wasted on padding. No torch here, so that
an engine without it starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from neko.errors import NekoError


@dataclass(frozen=True)
class Generated:
    """New token ids of one row, up to (not including) the end marker; `finished`: the marker came;
    `abandoned`: the engine stopped writing it early, as `Hopeless`."""

    ids: list[int]
    finished: bool
    abandoned: bool = False


Hopeless = Callable[[int, Sequence[int]], bool]
"""Asked with a row's index in the batch and its new tokens so far: whether no continuation of them
can be used (the safety valve will refuse it, whatever follows), so that a copy-aware engine may stop
writing the row (`Generated.abandoned`)."""


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows at once)."""
    if batch_size < 1:
        raise NekoError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@dataclass(frozen=True)
class PromptScores:
    """What `score_after_prompts` finds for one prompt: per target, the sum of its tokens'
    log-probabilities following the prompt; `familiarity` (None unless asked for): the mean
    log-probability of the prompt's own tokens (`mean_next_token_logprobs`)."""

    targets: list[float]
    familiarity: float | None = None


class LanguageModel(Protocol):
    """The two passes the `Corrector` asks of a model. Prompts are token-id rows of one batch."""

    engine: str
    """The name of the engine that runs it (`neko.correct.engines.ENGINES`)."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        eos_id: int,
        max_new_tokens: int,
        num_beams: int = 1,
        separators: Sequence[int] = (),
        hopeless: Hopeless | None = None,
    ) -> list[Generated]:
        """Greedy (`num_beams=1`) or beam-search continuations; `separators` (marker ids) split a
        prompt into the hypotheses a copy-aware engine drafts from (`neko.correct.drafts`), and such
        an engine stops writing a row once `hopeless` says so (the reference engines write every row
        in full)."""
        ...

    def score_after_prompts(
        self,
        prompts: Sequence[Sequence[int]],
        targets: Sequence[Sequence[Sequence[int]]],
        *,
        pad_id: int,
        rows_per_pass: int,
        familiarity_skip_ids: Sequence[int] | None = None,
    ) -> list[PromptScores]:
        """Per prompt, the summed log-probability of each of its targets (non-empty) as the answer;
        with `familiarity_skip_ids`, the prompt's familiarity too (`PromptScores`)."""
        ...
