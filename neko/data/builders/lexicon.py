"""Words a strong recognizer confuses: pronunciations, function words, numbers, contractions.

The pronunciations are the CMU dictionary that pocketsphinx ships (`cmudict-en-us.dict`, phones
without stress marks; variants such as `read(2)` are merged into the word's set of pronunciations).
Everything here is plain data and pure functions, shared by the modern-recognizer builder
(`neko.data.builders.modern`) and the N-best profile script (`scripts/nbest-profile.py`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from neko.errors import NekoError
from neko.io import read_lines

Pronunciation = tuple[str, ...]

# Short, frequent, acoustically weak words that strong recognizers drop, insert and swap.
FUNCTION_WORDS = frozenset([
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "no", "every", "each", "all",
    "both", "of", "to", "in", "on", "at", "by", "for", "from", "with", "about", "into", "onto", "over",
    "under", "up", "down", "out", "off", "than", "as", "like", "and", "or", "but", "so", "if", "then",
    "because", "while", "when", "where", "what", "which", "who", "whom", "whose", "how", "why", "i",
    "me", "my", "you", "your", "he", "him", "his", "she", "her", "it", "its", "we", "us", "our", "they",
    "them", "their", "is", "am", "are", "was", "were", "be", "been", "being", "has", "have", "had",
    "do", "does", "did", "will", "would", "shall", "should", "can", "could", "may", "might", "must",
    "not", "there", "here", "just", "very", "too", "also",
])  # fmt: skip

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]  # fmt: skip
_TENS = [
    "_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
]  # fmt: skip
_ORDINAL_ONES = [
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth",
]  # fmt: skip
_ORDINAL_TENS = [
    "_", "_", "twentieth", "thirtieth", "fortieth", "fiftieth", "sixtieth", "seventieth", "eightieth",
    "ninetieth",
]  # fmt: skip
CARDINALS = {word: value for value, word in enumerate(_ONES)} | {
    word: 10 * k for k, word in enumerate(_TENS) if k >= 2
}
ORDINALS = {word: value for value, word in enumerate(_ORDINAL_ONES)} | {
    word: 10 * k for k, word in enumerate(_ORDINAL_TENS) if k >= 2
}
NUMBER_WORDS = frozenset(CARDINALS) | frozenset(ORDINALS) | {"hundred", "thousand", "million", "oh"}
_ORDINAL_SUFFIX = re.compile(r"^\d+(st|nd|rd|th)$")

# Written forms a recognizer's language model may prefer over what was said, and back.
CONTRACTIONS = {
    ("i", "am"): "i'm",
    ("i", "have"): "i've",
    ("i", "will"): "i'll",
    ("i", "would"): "i'd",
    ("you", "are"): "you're",
    ("you", "have"): "you've",
    ("you", "will"): "you'll",
    ("we", "are"): "we're",
    ("we", "have"): "we've",
    ("we", "will"): "we'll",
    ("they", "are"): "they're",
    ("they", "have"): "they've",
    ("they", "will"): "they'll",
    ("he", "is"): "he's",
    ("she", "is"): "she's",
    ("it", "is"): "it's",
    ("that", "is"): "that's",
    ("there", "is"): "there's",
    ("what", "is"): "what's",
    ("let", "us"): "let's",
    ("do", "not"): "don't",
    ("does", "not"): "doesn't",
    ("did", "not"): "didn't",
    ("is", "not"): "isn't",
    ("are", "not"): "aren't",
    ("was", "not"): "wasn't",
    ("were", "not"): "weren't",
    ("have", "not"): "haven't",
    ("has", "not"): "hasn't",
    ("had", "not"): "hadn't",
    ("will", "not"): "won't",
    ("would", "not"): "wouldn't",
    ("should", "not"): "shouldn't",
    ("could", "not"): "couldn't",
    ("can", "not"): "can't",
    ("cannot",): "can't",
}
EXPANSIONS = {short: list(long) for long, short in CONTRACTIONS.items() if len(long) == 2}

# British -> American spelling rules; a pair is a spelling variant when both forms are dictionary
# words with a shared pronunciation.
_SPELLING_RULES = [
    (re.compile(r"(?<=[a-z]{3})our(s|ed|ing|ful|ite|ites|able)?$"), r"or\1"),
    (re.compile(r"is(e|es|ed|ing|ation|ations)$"), r"iz\1"),
    (re.compile(r"ys(e|es|ed|ing)$"), r"yz\1"),
    (re.compile(r"tre(s)?$"), r"ter\1"),
    (re.compile(r"ogue(s)?$"), r"og\1"),
    (re.compile(r"ll(ed|ing|er|ers)$"), r"l\1"),
    (re.compile(r"ae"), "e"),
    (re.compile(r"grey"), "gray"),
    (re.compile(r"ence$"), "ense"),
]


def pronunciation_path() -> Path:
    """The CMU dictionary inside the installed pocketsphinx package."""
    try:
        import pocketsphinx
    except ImportError:
        raise NekoError("pocketsphinx is not installed; run: pip install 'pocketsphinx>=5.0'") from None
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    if not path.exists():
        raise NekoError(f"{path} not found: the pocketsphinx package has no en-us dictionary")
    return path


def parse_pronunciations(lines: list[str]) -> dict[str, frozenset[Pronunciation]]:
    """`word(2) PH ONES` lines -> word -> its pronunciations (letters and apostrophes only)."""
    found: dict[str, set[Pronunciation]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        word = parts[0].split("(", 1)[0]
        if re.fullmatch(r"[a-z][a-z']*", word):
            found.setdefault(word, set()).add(tuple(re.sub(r"\d", "", p) for p in parts[1:]))
    return {word: frozenset(prons) for word, prons in found.items()}


@cache
def pronunciations() -> dict[str, frozenset[Pronunciation]]:
    path = pronunciation_path()
    return parse_pronunciations(read_lines(path))


def american_spelling(word: str) -> str | None:
    """The American form of a British spelling by the first rule that changes it, else None."""
    for pattern, replacement in _SPELLING_RULES:
        changed = pattern.sub(replacement, word, count=1)
        if changed != word:
            return changed
    return None


def is_number_token(word: str) -> bool:
    return word in NUMBER_WORDS or word.isdigit() or bool(_ORDINAL_SUFFIX.match(word))


def number_value(words: list[str]) -> tuple[int, bool] | None:
    """The value of a spoken number below 10,000 and whether it is an ordinal, else None.

    "twenty five" -> (25, False), "twenty fifth" -> (25, True), "three hundred" -> (300, False),
    "nineteen" -> (19, False). Years and digit strings ("nineteen ninety") are not parsed.
    """
    total, current, ordinal = 0, 0, False
    previous = None
    for k, word in enumerate(words):
        if ordinal:
            return None
        if word in CARDINALS or word in ORDINALS:
            value = CARDINALS.get(word, ORDINALS.get(word))
            assert value is not None
            ordinal = word in ORDINALS
            if previous == "unit" or (previous == "tens" and (value >= 10 or value == 0)):
                return None
            if previous == "teen" or (value == 0 and k > 0):
                return None
            current += value
            previous = "tens" if value >= 20 and value % 10 == 0 else ("teen" if value >= 10 else "unit")
        elif word in ("hundred", "hundredth") and 0 < current < 10 and previous == "unit":
            current *= 100
            previous = "scale"
            ordinal = word == "hundredth"
        elif word in ("thousand", "thousandth") and 0 < current < 10 and total == 0:
            total, current = current * 1000, 0
            previous = "scale"
            ordinal = word == "thousandth"
        else:
            return None
    if previous is None:
        return None
    return total + current, ordinal


def digits_of(value: int, ordinal: bool) -> str:
    """25 -> "25"; ordinals with their suffix: 1 -> "1st", 12 -> "12th", 23 -> "23rd"."""
    if not ordinal:
        return str(value)
    suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return f"{value}{suffix}"
