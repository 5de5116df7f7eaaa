"""Text normalisers applied to references and outputs alike before word or character error rates.

- `basic` (the default for speech, `asr`): Unicode NFKC; lower case; numbers written with digits are
  spelled out in words (`num2words`, less its British "and"), because speech recognizers
  (pocketsphinx among them) write what is said:
  "3" -> "three", "1,250" -> "one thousand two hundred fifty", "2.5" -> "two point five",
  "21st" -> "twenty first", "50%" -> "fifty percent", "$2.50" -> "two dollars fifty cents",
  "&" -> "and" (a year such as 1990 becomes
  "one thousand nine hundred ninety": a reading needs context that a normaliser does not have);
  hyphens, slashes and other punctuation become spaces, except an apostrophe inside a word
  ("don't" stays); runs of spaces collapse.
- `whisper`: the English normaliser of Whisper (Radford et al., 2022), the one HyPoradise scores with,
  as shipped in `transformers` (`EnglishTextNormalizer`): it also removes fillers ("uh", "hmm"),
  expands contractions, standardises titles and writes numbers as digits ("twenty five" -> "25").
  Whisper's British -> American spelling table is a data file on the model hub
  (`normalizer.json` of the Whisper tokenizers); neko reads nothing from the hub, so that table is
  left empty and spellings are compared as written.
- `none`: only strips and collapses whitespace; case and punctuation count. The default for OCR and
  for text tasks, where getting them right is the job.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache

from num2words import num2words

from neko.errors import NekoError

NORMALIZERS = ("basic", "whisper", "none")
MAX_SPELLED_DIGITS = 15
"""Longer digit strings (phone or card numbers) are read digit by digit."""


@lru_cache(maxsize=4096)
def spell_integer(number: int) -> str:
    """English words of an integer, without "and", commas or hyphens (as a recognizer writes them):
    1250 -> "one thousand two hundred fifty", -5 -> "minus five"."""
    return _as_spoken(num2words(number))


@lru_cache(maxsize=4096)
def spell_ordinal(number: int) -> str:
    """21 -> "twenty first", 12 -> "twelfth", 40 -> "fortieth"."""
    return _as_spoken(num2words(number, to="ordinal"))


def _as_spoken(words: str) -> str:
    """num2words' British "one hundred and twenty-one," as "one hundred twenty one"."""
    return " ".join(word for word in words.replace("-", " ").replace(",", " ").split() if word != "and")


def _spell_digits(digits: str) -> str:
    return " ".join(spell_integer(int(digit)) for digit in digits)


def _spell_number(match: re.Match[str]) -> str:
    whole = match.group("whole").replace(",", "")
    fraction = match.group("fraction")
    words = spell_integer(int(whole)) if len(whole) <= MAX_SPELLED_DIGITS else _spell_digits(whole)
    if fraction:
        words += " point " + _spell_digits(fraction)
    return f" {words} "


def _spell_money(match: re.Match[str]) -> str:
    words = f"{match.group('whole')} dollars"
    if match.group("cents") and int(match.group("cents")):
        words += f" {int(match.group('cents'))} cents"
    return f" {words} "


_MONEY = re.compile(r"\$\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d\d))?\b")
_ORDINAL = re.compile(rf"\b(\d{{1,{MAX_SPELLED_DIGITS}}})(?:st|nd|rd|th)\b")
_NUMBER = re.compile(r"(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<fraction>\d+))?")
_APOSTROPHES = re.compile(r"[‘’ʼ`´]")
_KEEP_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_NON_WORD = re.compile(r"[^\w'\s]|_")


def normalize_basic(text: str) -> str:
    """The default speech normaliser (see the module documentation)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("'", text)
    text = text.replace("&", " and ").replace("%", " percent ")
    text = _MONEY.sub(_spell_money, text)
    text = _ORDINAL.sub(lambda m: f" {spell_ordinal(int(m.group(1)))} ", text)
    text = _NUMBER.sub(_spell_number, text)
    # Apostrophes survive only between word characters: "don't" keeps it, "'quoted'" loses it.
    text = _KEEP_APOSTROPHE.sub("\0", text).replace("'", " ").replace("\0", "'")
    text = _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def normalize_whitespace(text: str) -> str:
    """Only strip and collapse whitespace."""
    return " ".join(text.split())


@cache
def _whisper_normalizer() -> Callable[[str], str]:
    try:
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer
    except ImportError as error:
        raise NekoError(f"the 'whisper' normaliser needs the transformers package ({error})") from None
    return EnglishTextNormalizer({})


def normalize_whisper(text: str) -> str:
    """Whisper's English normaliser, without the hub's spelling table (see the module documentation)."""
    return " ".join(_whisper_normalizer()(text).split())


def get_normalizer(name: str) -> Callable[[str], str]:
    """The normaliser called `name` (`basic`, `whisper` or `none`)."""
    if name == "basic":
        return normalize_basic
    if name == "whisper":
        _whisper_normalizer()  # fail now, with one line, if transformers is missing
        return normalize_whisper
    if name == "none":
        return normalize_whitespace
    raise NekoError(f"unknown normaliser {name!r}; expected one of {', '.join(NORMALIZERS)}")
