"""A byte-level BPE tokenizer trained on the run's own text, for models built from scratch.

Byte-level BPE covers any input (Spanish accents, OCR garbage) without unknown tokens. The task and
prompt markers are special tokens, so each is one id; `<|end|>` doubles as the end-of-sequence token
that stops generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from neko.tasks import END_MARKER, special_tokens

PAD_TOKEN = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int, tasks: Sequence[str]) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts`; markers of `tasks` become special tokens."""
    specials = [PAD_TOKEN, *special_tokens(tasks)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return as_transformers_tokenizer(tokenizer, tasks)


def as_transformers_tokenizer(tokenizer: Tokenizer, tasks: Sequence[str]) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END_MARKER,
        pad_token=PAD_TOKEN,
        additional_special_tokens=special_tokens(tasks),
        padding_side="left",
    )


def add_markers(tokenizer: PreTrainedTokenizerFast, tasks: Sequence[str]) -> int:
    """Give a pretrained tokenizer neko's markers (and a pad token); returns how many tokens were added."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": special_tokens(tasks)})
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.eos_token = END_MARKER
    tokenizer.padding_side = "left"
    return added
