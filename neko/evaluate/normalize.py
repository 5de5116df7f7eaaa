"""Text normalisers applied to references and outputs alike before word or character error rates.

- `basic` (the default for speech, `asr`): Unicode NFKC; lower case; numbers written with digits are
  spelled out in words, because speech recognizers (pocketsphinx among them) write what is said:
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
from functools import cache

from neko.errors import NekoError

NORMALIZERS = ("basic", "whisper", "none")

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def spell_integer(number: int) -> str:
    """English words of a non-negative integer, without "and": 1250 -> "one thousand two hundred fifty"."""
    if number < 0:
        return "minus " + spell_integer(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + spell_integer(rest))
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return spell_integer(high) + " " + name + ("" if rest == 0 else " " + spell_integer(rest))
    raise AssertionError("unreachable")


def spell_ordinal(number: int) -> str:
    """21 -> "twenty first", 12 -> "twelfth", 40 -> "fortieth"."""
    words = spell_integer(number).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _spell_number(match: re.Match[str]) -> str:
    whole = match.group("whole").replace(",", "")
    fraction = match.group("fraction")
    # Very long digit strings (phone or card numbers) are read digit by digit.
    words = spell_integer(int(whole)) if len(whole) <= 15 else _spell_digits(whole)
    if fraction:
        words += " point " + _spell_digits(fraction)
    return f" {words} "


def _spell_money(match: re.Match[str]) -> str:
    words = f"{match.group('whole')} dollars"
    if match.group("cents") and int(match.group("cents")):
        words += f" {int(match.group('cents'))} cents"
    return f" {words} "


_MONEY = re.compile(r"\$\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d\d))?\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
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
