"""Clean text for language-model pretraining, from the same sources as the correction corpora.

Only sentences of the train split are exported (English, and the Spanish Bible translations of
train-split verses), so a model pretrained on this text has seen no dev or test reference of any
task. Their length is the export's own (`--min-words`, `--max-words`: 4-60 words by default), not the
corpora's 4-25. Fortunes are a test-only (zero-shot) domain and are never exported. The split is a hash of the
sentence, so it cannot know the evaluation sets that come from elsewhere (HyPoradise, JFLEG) or a
sentence that a dev or test file took from another source: every exported line is also checked
against the references and source sentences of the held-out files (`default_held_out`), compared
normalised (`neko.data.splits.normalize`), and lines found there are left out. Lines are
deduplicated across sources the same way.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from neko.data.formats import read_examples
from neko.data.schema import Example
from neko.data.sources import MIN_WORDS, corpora_dir, sentences
from neko.data.splits import normalize
from neko.errors import NekoError
from neko.resources import CHECKOUT

PRETRAINING_SOURCES = (
    *("captions", "bible", "wordnet", "handbook", "kjv", "gcide", "pydoc", "manpages"),
    *("linuxdoc", "mhcc", "tdavid", "perldoc", "foldoc", "jargon"),
)
LANGUAGES = ("en", "es")
MAX_WORDS = 60
"""Longer than the corpora's sentences (`neko.data.sources.MAX_WORDS`, short enough to speak or
render as one line): a language model learns from long sentences too, and most KJV verses, GCIDE
quotations and commentary sentences are longer than 25 words."""
MAX_WORDS_LIMIT = 200


def pretraining_lines(
    sources: Sequence[str],
    languages: Sequence[str],
    seed: int = 0,
    held_out: frozenset[str] = frozenset(),
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
) -> list[str]:
    """Train-split sentences of `sources` in `languages` of `min_words` to `max_words` English words,
    deduplicated, without the lines whose normalised text is in `held_out` (see `held_out_keys`),
    shuffled reproducibly."""
    for source in sources:
        if source not in PRETRAINING_SOURCES:
            raise NekoError(
                f"text source {source!r} cannot be exported; expected some of {PRETRAINING_SOURCES}"
            )
    for language in languages:
        if language not in LANGUAGES:
            raise NekoError(f"language {language!r}: expected some of {', '.join(LANGUAGES)}")
    if not MIN_WORDS <= min_words <= max_words <= MAX_WORDS_LIMIT:
        raise NekoError(
            f"sentence length {min_words}-{max_words} words: expected {MIN_WORDS} <= --min-words "
            f"<= --max-words <= {MAX_WORDS_LIMIT}"
        )
    seen = set(held_out)
    lines = []
    for line in _lines(sources, languages, min_words, max_words):
        key = normalize(line)
        if key not in seen:
            seen.add(key)
            lines.append(line)
    random.Random(seed).shuffle(lines)
    return lines


def _lines(sources: Sequence[str], languages: Sequence[str], min_words: int, max_words: int) -> Iterator[str]:
    for source in sources:
        for sentence in sentences(source, "train", max_words):
            if len(sentence.text.split()) < min_words:
                continue
            if "en" in languages:
                yield sentence.text
            if "es" in languages and sentence.translation:
                yield sentence.translation


def held_out_keys(examples: Iterable[Example]) -> frozenset[str]:
    """The normalised references (all of them) and recorded source sentences of `examples`."""
    keys = set()
    for example in examples:
        english = example.metadata.get("source_text")
        texts = [*example.references, *([english] if isinstance(english, str) else [])]
        keys.update(normalize(text) for text in texts)
    keys.discard("")
    return frozenset(keys)


def default_held_out() -> list[Path]:
    """Every committed data file that is not a training file (`data/*/*.jsonl.gz` without `train` in
    its name: dev, test, JFLEG), and the HyPoradise test files of the corpora folder."""
    data = sorted(p for p in (CHECKOUT / "data").glob("*/*.jsonl.gz") if "train" not in p.name)
    return [*data, *sorted((corpora_dir() / "hyporadise").glob("test_*.json"))]


def read_held_out(paths: Sequence[Path]) -> Iterator[Example]:
    """The examples of held-out files; HyPoradise `.json` files are read as ASR (they do not say)."""
    for path in paths:
        yield from read_examples(path, task="asr" if path.suffix == ".json" else None)
