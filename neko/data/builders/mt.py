"""MT data: apertium eng-spa on the clean English of the handbook's sentence pairs.

One hypothesis (apertium's translation); reference: the human Spanish of the pair
(`neko.data.parallel`). Datasets: `handbook`, and `handbook-held-out` (whole held-out chapters, test
only, `metadata.zero_shot`). Apertium is cheap per sentence and slow to start, so each call
translates a batch of sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from neko.data.builders.common import example_id
from neko.data.builders.speech import HELD_OUT_SOURCE, translate
from neko.data.parallel import SentencePair, pairs_of
from neko.data.schema import Example
from neko.data.splits import check_split_name

BATCH = 200
MT_SYSTEM = "apertium eng-spa"


def plan(split: str, seed: int, count: int | None = None) -> list[SentencePair]:
    """The first `count` pairs of a split (all when None or fewer) in a seeded order: index i's pair
    does not depend on `count`."""
    check_split_name(split)
    pairs = pairs_of(split)
    random.Random(f"{seed}/mt/{split}").shuffle(pairs)
    return pairs if count is None else pairs[:count]


def build(
    pairs: Sequence[SentencePair],
    split: str,
    seed: int,
    translator: Callable[[list[str]], list[str]] = translate,
) -> list[Example]:
    """One example per pair; `translator` maps English lines to Spanish ones, a batch per call."""
    translations: list[str] = []
    for start in range(0, len(pairs), BATCH):
        translations += translator([p.english for p in pairs[start : start + BATCH]])
    return [
        Example(
            id=example_id("mt", split, seed, index),
            task="mt",
            hypotheses=[spanish],
            reference=pair.spanish,
            dataset=HELD_OUT_SOURCE if pair.zero_shot else "handbook",
            language_pair="en-es",
            metadata={
                "source_text": pair.english,
                "source_id": pair.id,
                "page": pair.page,
                "zero_shot": pair.zero_shot,
                "mt": MT_SYSTEM,
            },
        )
        for index, (pair, spanish) in enumerate(zip(pairs, translations, strict=True))
    ]
