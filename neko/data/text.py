"""Clean text for language-model pretraining, from the same sources as the correction corpora.

Only sentences of the train split are exported (English, and the Spanish Bible translations of
train-split verses), so a model pretrained on this text has seen no dev or test reference of any
task. Fortunes are a test-only (zero-shot) domain and are never exported.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer

from neko.data.sources import sentences
from neko.errors import NekoError
from neko.io import check_writable, write_text

PRETRAINING_SOURCES = ("captions", "bible", "wordnet", "handbook")
LANGUAGES = ("en", "es")


def pretraining_lines(sources: Sequence[str], languages: Sequence[str], seed: int = 0) -> list[str]:
    """Train-split sentences of `sources` in `languages`, shuffled reproducibly."""
    for source in sources:
        if source not in PRETRAINING_SOURCES:
            raise NekoError(
                f"text source {source!r} cannot be exported; expected some of {PRETRAINING_SOURCES}"
            )
    for language in languages:
        if language not in LANGUAGES:
            raise NekoError(f"language {language!r}: expected some of {', '.join(LANGUAGES)}")
    lines = list(_lines(sources, languages))
    random.Random(seed).shuffle(lines)
    return lines


def _lines(sources: Sequence[str], languages: Sequence[str]) -> Iterator[str]:
    for source in sources:
        for sentence in sentences(source, "train"):
            if "en" in languages:
                yield sentence.text
            if "es" in languages and sentence.translation:
                yield sentence.translation


def text_command(
    out: Annotated[Path, typer.Argument(help="Text file to write, one sentence per line (.gz compresses).")],
    source: Annotated[list[str] | None, typer.Option("--source", help="Repeatable; default: all.")] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="en and/or es; default: both.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
) -> None:
    """Export clean train-split text for language-model pretraining (`data.text` in a training config)."""
    check_writable(out)
    lines = pretraining_lines(source or PRETRAINING_SOURCES, language or LANGUAGES, seed)
    write_text(out, "".join(line + "\n" for line in lines))
    typer.echo(f"wrote {len(lines)} lines to {out}", err=True)
