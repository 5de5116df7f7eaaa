"""The names of the engines that write corrections (no torch here: the CLI lists them in its help)."""

from __future__ import annotations

from neko.errors import NekoError

ENGINES = ("copy", "transformers")
"""`copy`: copy-aware greedy decoding (`neko.correct.decoding.copy_generate`), the same outputs as
greedy search in fewer forward passes; beam search runs on transformers. `transformers`: its
`generate`, the reference."""
DEFAULT_ENGINE = "copy"
ENGINE_HELP = "copy (greedy with drafts copied from the hypotheses, the same outputs) or transformers"


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise NekoError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine
