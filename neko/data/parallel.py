"""Faithful English-Spanish sentence pairs: the Debian Administrator's Handbook, en-US and es-ES.

The two HTML trees have the same pages and, on every page, the same `<div class="para">`
paragraphs in the same order, so paragraph i of a page's English is translated by paragraph i of
its Spanish. Pairs are made in steps, each a filter whose survivors `AlignmentCounts` records:

1. paragraphs: drop those holding block structure (lists, examples: a nested `<div>`), those whose
   Spanish equals the English (untranslated), and those that are not prose on both sides (titles,
   labels: no sentence-final punctuation).
2. sentences: split both sides; keep a paragraph only when the sentence counts are equal.
3. pairs: drop sentences holding code (inline commands, options, user input, multi-word literals,
   URLs, e-mail addresses), untranslated sentences, sentences outside 4-40 English words or not
   sentence-like, and pairs whose length ratio (Spanish characters / English) is outside 0.7-2.0;
   then duplicates (by normalised English or normalised Spanish; the first is kept).

A pair's split is `split_of` of its English sentence, as for every task, so a sentence is in the
same split here as in the English-only `handbook` source; the pages of `HELD_OUT_PAGES` (two whole
chapters) are a zero-shot test set instead: all their pairs are test, none is train or dev.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from neko.data.sources import HANDBOOK_PARA, HTML_TAG, clean, sentence_like
from neko.data.splits import normalize, split_of
from neko.errors import NekoError

HANDBOOK_HTML = Path("/usr/share/doc/debian-handbook/html")
ENGLISH, SPANISH = "en-US", "es-ES"
# Chapter 13 (Workstation) and chapter 14 (Security), every section page of each.
HELD_OUT_PAGES = frozenset(
    {
        "workstation",
        "sect.graphical-desktops",
        "sect.main-desktop-tools",
        "sect.office-suites",
        "sect.windows-emulation",
        "sect.rtc-clients",
        "sect.web-browsers",
        "sect.development",
        "sect.customizing-graphical-interface",
        "security",
        "sect.firewall-packet-filtering",
        "sect.supervision",
        "sect.apparmor",
        "sect.selinux",
        "sect.other-security-considerations",
        "sect.dealing-with-compromised-machine",
    }
)
MIN_WORDS, MAX_WORDS = 4, 40
MIN_RATIO, MAX_RATIO = 0.7, 2.0

# Inline elements that are code or command lines; a sentence holding one is not translation text.
_CODE = re.compile(
    r'<(code|em|strong|span|pre) class="(command|replaceable|userinput|computeroutput|option|varname|'
    r'function|code|email|screen|parameter|errortext)"[^>]*>.*?</\1>',
    re.S,
)
# Literals and file names are terms when they are one word (`sources.list`), code otherwise.
_LITERAL = re.compile(r'<code class="(?:literal|filename)"[^>]*>(.*?)</code>', re.S)
_URL = re.compile(r"https?:|www\.|\S@\S|→")
_CODE_MARK = "\x00"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')»]?\s+(?=[\"'(«¿¡]?[A-ZÁÉÍÓÚÑÜ])")


@dataclass(frozen=True)
class SentencePair:
    """One English sentence and its human Spanish translation, with where it came from."""

    page: str
    paragraph: int
    sentence: int
    english: str
    spanish: str

    @property
    def id(self) -> str:
        return f"handbook/{self.page}/{self.paragraph}/{self.sentence}"

    @property
    def zero_shot(self) -> bool:
        return self.page in HELD_OUT_PAGES

    @property
    def split(self) -> str:
        return "test" if self.zero_shot else split_of(self.english)


@dataclass
class AlignmentCounts:
    """How many pages, paragraphs and sentence pairs survive each filter (in this order)."""

    pages: int = 0
    paragraphs: int = 0
    paragraphs_without_blocks: int = 0
    paragraphs_translated: int = 0
    paragraphs_prose: int = 0
    paragraphs_equal_sentences: int = 0
    sentence_pairs: int = 0
    pairs_without_code: int = 0
    pairs_translated: int = 0
    pairs_sentence_like: int = 0
    pairs_length_ratio: int = 0
    pairs_distinct: int = 0
    pages_with_pairs: set[str] = field(default_factory=set)


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment: code marked with `_CODE_MARK`, typography to ASCII."""
    fragment = _CODE.sub(_CODE_MARK, fragment)
    fragment = _LITERAL.sub(
        lambda m: _CODE_MARK if " " in HTML_TAG.sub("", m.group(1)).strip() else m.group(1), fragment
    )
    return clean(html.unescape(HTML_TAG.sub("", fragment)))


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of an English or Spanish paragraph (a capital, `¿` or `¡` opens a sentence)."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _prose(text: str) -> bool:
    return text.rstrip("\"')»").endswith((".", "!", "?", ":"))


def _good_pair(english: str, spanish: str, counts: AlignmentCounts) -> bool:
    if _CODE_MARK in english + spanish or _URL.search(english + spanish):
        return False
    counts.pairs_without_code += 1
    if normalize(english) == normalize(spanish):
        return False
    counts.pairs_translated += 1
    words = len(english.split())
    if not (MIN_WORDS <= words <= MAX_WORDS and sentence_like(english)):
        return False
    if not spanish.rstrip("\"')»").endswith((".", "!", "?")):
        return False
    counts.pairs_sentence_like += 1
    if not MIN_RATIO <= len(spanish) / len(english) <= MAX_RATIO:
        return False
    counts.pairs_length_ratio += 1
    return True


def align_page(
    page: str, english_html: str, spanish_html: str, counts: AlignmentCounts
) -> list[SentencePair]:
    """The sentence pairs of one page (before deduplication); `counts` is updated."""
    english_paras, spanish_paras = HANDBOOK_PARA.findall(english_html), HANDBOOK_PARA.findall(spanish_html)
    if len(english_paras) != len(spanish_paras):
        raise NekoError(
            f"handbook page {page}: {len(english_paras)} English paragraphs but {len(spanish_paras)} Spanish"
        )
    counts.pages += 1
    pairs = []
    for number, (english_para, spanish_para) in enumerate(zip(english_paras, spanish_paras, strict=True)):
        counts.paragraphs += 1
        if "<div" in english_para or "<div" in spanish_para:
            continue
        counts.paragraphs_without_blocks += 1
        english, spanish = _text(english_para), _text(spanish_para)
        if english == spanish:
            continue
        counts.paragraphs_translated += 1
        if not (_prose(english) and _prose(spanish)):
            continue
        counts.paragraphs_prose += 1
        english_sentences, spanish_sentences = split_sentences(english), split_sentences(spanish)
        if len(english_sentences) != len(spanish_sentences):
            continue
        counts.paragraphs_equal_sentences += 1
        for k, (en, es) in enumerate(zip(english_sentences, spanish_sentences, strict=True)):
            counts.sentence_pairs += 1
            if _good_pair(en, es, counts):
                pairs.append(SentencePair(page, number, k, en, es))
    return pairs


def deduplicate(pairs: Iterable[SentencePair], counts: AlignmentCounts) -> list[SentencePair]:
    """The first pair of each normalised English and each normalised Spanish sentence."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        keys = {"en:" + normalize(pair.english), "es:" + normalize(pair.spanish)}
        if keys & seen:
            continue
        seen |= keys
        kept.append(pair)
        counts.pages_with_pairs.add(pair.page)
    counts.pairs_distinct = len(kept)
    return kept


def align_folder(root: Path = HANDBOOK_HTML) -> tuple[list[SentencePair], AlignmentCounts]:
    """Every distinct sentence pair of the handbook under `root` (its `en-US` and `es-ES` folders)."""
    english_dir, spanish_dir = root / ENGLISH, root / SPANISH
    if not english_dir.is_dir() or not spanish_dir.is_dir():
        raise NekoError(
            f"{english_dir} or {spanish_dir} not found; install the Debian package 'debian-handbook'"
        )
    counts = AlignmentCounts()
    pairs: list[SentencePair] = []
    for english_file in sorted(english_dir.glob("*.html")):
        spanish_file = spanish_dir / english_file.name
        if not spanish_file.exists():
            raise NekoError(f"{spanish_file} not found: the Spanish handbook lacks page {english_file.stem}")
        english_html = english_file.read_text(encoding="utf-8")
        pairs += align_page(english_file.stem, english_html, spanish_file.read_text(encoding="utf-8"), counts)
    return deduplicate(pairs, counts), counts


@cache
def handbook_pairs() -> tuple[SentencePair, ...]:
    """The installed handbook's sentence pairs, in page, paragraph and sentence order."""
    return tuple(align_folder()[0])


def pairs_of(split: str) -> list[SentencePair]:
    """The handbook pairs of a split: hash-split by English sentence, held-out pages all in test."""
    return [pair for pair in handbook_pairs() if pair.split == split]
