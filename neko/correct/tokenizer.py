"""A model directory's tokenizer, read with the `tokenizers` library alone.

The corrector needs little of a tokenizer: encoding and decoding text without special tokens, the ids
of its markers, the end marker and the padding. `tokenizer.json` (with `tokenizer_config.json`
naming the end and padding tokens) gives all of it, without transformers, whose import takes seconds.
The same calls as transformers' fast tokenizer, so a `Corrector` takes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neko.errors import NekoError, first_line
from neko.io import read_json_object
from neko.tasks import END_MARKER, special_tokens


class Tokenizer:
    """`tokenizer.json` with the end and padding tokens of `tokenizer_config.json`."""

    def __init__(self, backend, eos_token: str, pad_token: str | None) -> None:
        self.backend = backend
        self.eos_token = eos_token
        self.pad_token_id = None if pad_token is None else backend.token_to_id(pad_token)
        self.all_special_ids = sorted(
            token_id for token_id, token in backend.get_added_tokens_decoder().items() if token.special
        )

    def __len__(self) -> int:
        """The vocabulary's size, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True, **_: object) -> str:
        """Byte-level BPE decodes its spaces exactly, so transformers' `clean_up_tokenization_spaces`
        has nothing to do here."""
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.backend.token_to_id(token)


def load_tokenizer(path: Path, prompt_style: str, tasks: Sequence[str]) -> Tokenizer:
    """The tokenizer of the model directory `path`, checked against the contract of
    `neko.correct.model_dir`: its end token is `END_MARKER` and, for compact prompts, every marker of
    the model's `tasks` is one token."""
    from tokenizers import Tokenizer as Backend

    config = read_json_object(path / "tokenizer_config.json")
    read_json_object(path / "tokenizer.json")
    try:
        backend = Backend.from_file(str(path / "tokenizer.json"))
    except Exception as error:  # the tokenizers library raises plain Exceptions for a malformed file
        raise NekoError(f"{path}: cannot load the tokenizer ({first_line(error)})") from None
    tokenizer = Tokenizer(backend, config_token(config, "eos_token"), config_token(config, "pad_token"))
    if tokenizer.eos_token != END_MARKER or tokenizer.convert_tokens_to_ids(END_MARKER) is None:
        raise NekoError(
            f"{path}: the tokenizer's eos_token is {tokenizer.eos_token!r}, expected {END_MARKER!r}"
        )
    if prompt_style == "compact":
        for marker in special_tokens(tasks):
            if len(tokenizer.encode(marker)) != 1:
                raise NekoError(f"{path}: the tokenizer lacks the special token {marker!r}")
    return tokenizer


def config_token(config: dict, key: str) -> str | None:
    """A token of `tokenizer_config.json`: a string, or transformers' `{"content": ...}` form."""
    value = config.get(key)
    return value.get("content") if isinstance(value, dict) else value
