"""Clean English text (and human Spanish translations) that the corpus builders feed to recognizers.

Sources, each a list of `Sentence`s, filtered (4-25 words, or up to `max_words` for language-model
text; mostly ASCII letters, no markup) and deduplicated by normalised text:

- `captions`: Multi30k English image captions (task1 train/val/test and task2's five captions per
  image), from `corpora/multi30k` (see `corpora_dir`).
- `bible`: World English Bible verses (diatheke module engWEB2015eb) with their Reina-Valera 1909
  translation (spaRV1909eb) in `Sentence.translation`.
- `kjv`: King James Version verses (sword-text-kjv), only those whose World English Bible verse is
  not in the dev or test split of `bible` (the two translations of a verse are near-copies).
- `wordnet`: WordNet glosses and usage examples (wordnet-base).
- `fortunes`: fortune-mod cookies, split into sentences (the offensive set is not used).
- `handbook`: the Debian Administrator's Handbook, English paragraphs split into sentences.
- `gcide`: the quotations from literature that GCIDE (dict-gcide, Webster's 1913 and later) cites,
  prose only: verse, Middle English authors and Bible citations are left out.
- `pydoc`: the Python documentation (python3-doc), prose paragraphs only: code, tables and sentences
  with inline code are left out.
- `manpages`: the DESCRIPTION sections of the Linux man-pages project (manpages, manpages-dev).
- `linuxdoc`: the Linux kernel documentation (linux-doc), prose paragraphs of its Sphinx HTML.
- `mhcc`, `tdavid`: Matthew Henry's Concise Commentary and Spurgeon's Treasury of David
  (sword-comm-mhcc, sword-comm-tdavid), without the sentences that quote a KJV verse `kjv` leaves
  out.
- `perldoc`: the Perl documentation (perl-doc), POD text paragraphs without code.
- `foldoc`, `jargon`: the definitions of the Free On-line Dictionary of Computing and the Jargon File
  (dict-foldoc, dict-jargon).

Loading is cached per process (`load_source`); the SWORD exports (WEB with RV1909, KJV, the
commentaries) are cached on disk as well.
"""

from __future__ import annotations

import glob
import gzip
import html
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from neko.data.splits import normalize, split_of
from neko.errors import NekoError
from neko.io import read_json, read_lines, write_json

SOURCES = (
    *("captions", "bible", "wordnet", "fortunes", "handbook", "kjv", "gcide", "pydoc", "manpages"),
    *("linuxdoc", "mhcc", "tdavid", "perldoc", "foldoc", "jargon"),
)
MIN_WORDS = 4
MAX_WORDS = 25

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
HANDBOOK_DIR = Path("/usr/share/doc/debian-handbook/html/en-US")
BIBLE_MODULES = ("engWEB2015eb", "spaRV1909eb")
KJV_MODULE = "engKJV2006eb"
BIBLE_PACKAGES = {
    "engWEB2015eb": "sword-text-web",
    "spaRV1909eb": "sword-text-sparv",
    KJV_MODULE: "sword-text-kjv",
}
GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")
PYDOC_DIR = Path("/usr/share/doc/python3-doc/html")
MANPAGE_PACKAGES = ("manpages", "manpages-dev")
LINUXDOC_GLOB = "/usr/share/doc/linux-doc-*/html"
PERLDOC_GLOB = "/usr/share/perl/5.*/pod"
FOLDOC_DICT = Path("/usr/share/dictd/foldoc.dict.dz")
JARGON_DICT = Path("/usr/share/dictd/jargon.dict.dz")


@dataclass(frozen=True)
class Sentence:
    """One clean English sentence; `translation` is a human Spanish translation when known."""

    id: str
    text: str
    source: str
    translation: str | None = None

    @property
    def split(self) -> str:
        return split_of(self.text)


def corpora_dir() -> Path:
    """`$NEKO_CORPORA`, else `../shared/corpora` beside the repository."""
    override = os.environ.get("NEKO_CORPORA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neko" / "sources"


_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2014": " - ",
        "\u2013": "-",
        "\u00a0": " ",
        "\u2026": "...",
    }
)
_MARKUP = re.compile(r"[<>{}\[\]|\\@#$%^*_=~`]|https?:|www\.|\.\w{2,4}/|--")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]?\s+(?=[\"'(]?[A-Z])")


def clean(text: str) -> str:
    """Typographic quotes and dashes to ASCII, whitespace collapsed."""
    return _SPACE.sub(" ", text.translate(_QUOTES)).strip()


def acceptable(text: str, max_words: int = MAX_WORDS) -> bool:
    """MIN_WORDS to `max_words` words, at least 80% ASCII letters among the non-space characters, no
    markup."""
    words = text.split()
    if not MIN_WORDS <= len(words) <= max_words or _MARKUP.search(text):
        return False
    if text.count('"') % 2 or text.count("(") != text.count(")"):
        return False
    chars = [c for c in text if not c.isspace()]
    letters = sum(c.isascii() and c.isalpha() for c in chars)
    return letters >= 0.8 * len(chars) and all(c.isascii() for c in text)


def sentence_like(text: str) -> bool:
    """Starts with a capital letter (after an opening quote) and ends like a sentence."""
    start = text.lstrip("\"'(")
    return bool(start) and start[0].isupper() and text.rstrip("\"')").endswith((".", "!", "?"))


def sentences_of(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _deduplicate(items: list[Sentence]) -> list[Sentence]:
    seen: set[str] = set()
    kept = []
    for item in items:
        key = normalize(item.text)
        if key and key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _need(path: Path, package: str) -> None:
    if not path.exists():
        raise NekoError(f"{path} not found; install the Debian package '{package}' (scripts/setup.sh)")


def paragraph_sentences(
    prefix: str, source: str, paragraph: str, max_words: int, keep: Callable[[str], bool] | None = None
) -> Iterator[Sentence]:
    """The acceptable, sentence-like sentences of one paragraph (that `keep` also accepts), with ids
    PREFIX/K: K counts every sentence of the paragraph, so an id does not move when a filter changes."""
    for k, sentence in enumerate(sentences_of(paragraph)):
        if acceptable(sentence, max_words) and sentence_like(sentence) and (keep is None or keep(sentence)):
            yield Sentence(f"{prefix}/{k}", sentence, source)


def page_sentences(prefix: str, source: str, paragraphs: Iterable[str], max_words: int) -> Iterator[Sentence]:
    """`paragraph_sentences` of each paragraph of a page, with ids PREFIX/PARAGRAPH/K (PARAGRAPH counts
    every paragraph, an empty one too)."""
    for number, paragraph in enumerate(paragraphs):
        yield from paragraph_sentences(f"{prefix}/{number}", source, paragraph, max_words)


def load_captions(max_words: int = MAX_WORDS) -> list[Sentence]:
    folder = corpora_dir() / "multi30k"
    files = sorted(folder.glob("*.en.gz"))
    if not files:
        raise NekoError(f"no Multi30k captions (*.en.gz) in {folder}; set NEKO_CORPORA to the corpora folder")
    items = []
    for file in files:
        stem = file.name.removesuffix(".en.gz")
        for number, line in enumerate(read_lines(file), start=1):
            text = clean(line)
            if acceptable(text, max_words):
                items.append(Sentence(f"multi30k/{stem}/{number}", text, "captions"))
    return items


def load_wordnet(max_words: int = MAX_WORDS) -> list[Sentence]:
    _need(WORDNET_DIR / "data.noun", "wordnet-base")
    items = []
    for part in ("noun", "verb", "adj", "adv"):
        with open(WORDNET_DIR / f"data.{part}", encoding="latin-1") as lines:
            for line in lines:
                if line.startswith(" ") or " | " not in line:
                    continue
                offset = line.split(" ", 1)[0]
                gloss = line.split(" | ", 1)[1]
                for number, piece in enumerate(p.strip() for p in gloss.split(";")):
                    text = clean(piece.strip('"'))
                    if not text:
                        continue
                    text = text[0].upper() + text[1:]
                    if not text.endswith((".", "!", "?")):
                        text += "."
                    if acceptable(text, max_words):
                        items.append(Sentence(f"wordnet/{part}/{offset}/{number}", text, "wordnet"))
    return items


def load_fortunes(max_words: int = MAX_WORDS) -> list[Sentence]:
    _need(FORTUNES_DIR, "fortunes")
    items = []
    for file in sorted(FORTUNES_DIR.iterdir()):
        if file.suffix or not file.is_file():
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        bodies = (
            clean("\n".join(line for line in cookie.splitlines() if not line.strip().startswith("--")))
            for cookie in text.split("\n%\n")
        )
        items += page_sentences(f"fortunes/{file.name}", "fortunes", bodies, max_words)
    return items


HANDBOOK_PARA = re.compile(r'<div class="para">(.*?)</div>', re.S)
"""A paragraph of the Debian Administrator's Handbook's HTML (every language's)."""
HTML_TAG = re.compile(r"<[^>]+>")


def load_handbook(max_words: int = MAX_WORDS) -> list[Sentence]:
    _need(HANDBOOK_DIR, "debian-handbook")
    items = []
    for file in sorted(HANDBOOK_DIR.glob("*.html")):
        paragraphs = (
            "" if "<div" in para or "<code" in para else clean(html.unescape(HTML_TAG.sub("", para)))
            for para in HANDBOOK_PARA.findall(file.read_text(encoding="utf-8"))
        )
        items += page_sentences(f"handbook/{file.stem}", "handbook", paragraphs, max_words)
    return items


_VERSE_KEY = re.compile(r"((?:[1-3I]{1,3} )?[A-Z][A-Za-z]+(?: of [A-Z][a-z]+)? \d+:\d+): ")
_W_TAG = re.compile(r"</?w\b[^>]*>")


def _osis_to_text(text: str) -> str:
    """Strip OSIS markup; adjacent <w> elements are separate words (`God</w><w>created`)."""
    text = re.sub(r"<note\b.*?</note>", "", text, flags=re.S)
    text = re.sub(r"(?<=\w)((?:</?w\b[^>]*>)+)(?=\w)", " ", text)
    text = _W_TAG.sub("", text)
    text = HTML_TAG.sub("", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def _diatheke_entries(module: str, package: str) -> dict[str, str]:
    """The OSIS text of each verse key of a SWORD module, in canonical order."""
    if shutil.which("diatheke") is None:
        raise NekoError("diatheke not found; install the Debian package 'diatheke' (scripts/setup.sh)")
    result = subprocess.run(
        ["diatheke", "-b", module, "-f", "osis", "-k", "Gen 1:1-Rev 22:21"],
        capture_output=True,
        text=True,
        check=False,
    )
    verses: dict[str, list[str]] = {}
    current = None
    for line in result.stdout.splitlines():
        match = _VERSE_KEY.search(line)
        if match:
            current = match.group(1)
            verses[current] = [line[match.end() :]]
        elif current is not None and line.strip() and not line.startswith(f"({module})"):
            verses[current].append(line)
    if not verses:
        raise NekoError(f"diatheke module {module} is empty; install the Debian package '{package}'")
    return {key: " ".join(parts) for key, parts in verses.items()}


def _export_bible(module: str) -> dict[str, str]:
    entries = _diatheke_entries(module, BIBLE_PACKAGES[module])
    return {key: _osis_to_text(text) for key, text in entries.items()}


_SPANISH_FIXES = [
    (re.compile(r"\bá\b"), "a"),
    (re.compile(r"\bÁ\b"), "A"),
    (re.compile(r"\bé\b"), "e"),
    (re.compile(r"\b(f|v|d)ué\b"), r"\1ue"),
    (re.compile(r"\b(v|d)ió\b"), r"\1io"),
]


def modernize_spanish(text: str) -> str:
    """RV1909 spelling to current accents (á -> a, fué -> fue, ...), and the drop-cap first word."""
    text = text.translate(_QUOTES)
    for pattern, replacement in _SPANISH_FIXES:
        text = pattern.sub(replacement, text)
    words = text.split(" ", 1)
    if len(words[0]) > 1 and words[0].isupper():
        words[0] = words[0][0] + words[0][1:].lower()
    return _SPACE.sub(" ", " ".join(words)).strip()


def load_bible(max_words: int = MAX_WORDS) -> list[Sentence]:
    path = cache_dir() / "bible-web-rv1909.json"
    if path.exists():
        pairs = read_json(path)
    else:
        english, spanish = (_export_bible(m) for m in BIBLE_MODULES)
        pairs = [[key, english[key], spanish[key]] for key in english if key in spanish]
        write_json(path, pairs, indent=None)
    items = []
    for key, english, spanish in pairs:
        # Psalm titles are verse 1 in RV1909 but a heading in WEB: those verses do not align.
        if key.startswith("Psalms ") and key.endswith(":1"):
            continue
        text = clean(english)
        translation = modernize_spanish(spanish)
        if acceptable(text, max_words) and translation and len(translation.split()) <= 2 * max_words:
            items.append(Sentence(f"bible/{key}", text, "bible", translation))
    return items


_CITATION = re.compile(r"(?:^|\s)--(?=[A-Z0-9])(.*)$")
_QUOTE_INDENT = 8
_AUTHOR_COLUMN = 30
# Middle and early-modern English spelling (`aband`, `eke`) is not the English the models should learn.
_ARCHAIC_AUTHORS = re.compile(
    r"^(?:Chaucer|Spenser|Gower|Wyclif|Piers Plowman|Mandeville|Lydgate|R\. of Gloucester|"
    r"R\. of Brunne|Robert of Brunne|Old Play|Ancren Riwle|Layamon|Ormulum|Rom\. of R)"
)
# `--Deut. xxxiv. 7.`: verses of the Bible, near-copies of the `bible` source's verses of every split.
_BIBLE_CITATION = re.compile(r"^(?:[1-3] )?[A-Z][a-z]+\. [ivxlc]+\.")
_ELLIPSIS = re.compile(r"\.(?: \.)+")


def gcide_quotations(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each prose quotation in the text of a GCIDE dictd file.

    A quotation is a paragraph indented deeper than the definitions, opened by a blank line, whose
    last line ends with its author (`--Milton.`, right-aligned, or on a line of its own). Verse (every
    line capitalised), archaic authors and Bible citations are left out.
    """
    block: list[str] = []
    start = 0
    opened = False
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.strip()
        if not body:
            block, opened = [], True
            continue
        indent = len(line) - len(line.lstrip())
        quoted = opened and _QUOTE_INDENT <= indent < _AUTHOR_COLUMN and not body.startswith("[")
        citation = _CITATION.search(line)
        before = line[: citation.start()].strip() if citation else body
        if before and not quoted:
            block, opened = [], False
            continue
        if before:
            start = start if block else number
            block.append(before)
        if citation is None:
            continue
        if block and _prose_quotation(block, citation.group(1).strip()):
            yield start, _ELLIPSIS.sub("...", " ".join(block))
        block = []


def _prose_quotation(lines: list[str], author: str) -> bool:
    verse = len(lines) > 1 and all(line[0].isupper() for line in lines)
    return not verse and not _ARCHAIC_AUTHORS.match(author) and not _BIBLE_CITATION.match(author)


def load_gcide(max_words: int = MAX_WORDS) -> list[Sentence]:
    _need(GCIDE_DICT, "dict-gcide")
    with gzip.open(GCIDE_DICT, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    items = []
    for line, quotation in gcide_quotations(text):
        items += paragraph_sentences(f"gcide/{line}", "gcide", clean(quotation), max_words)
    return items


_SPHINX_BODY = re.compile(r'<div class="body" role="main">(.*?)<div class="sphinxsidebar"', re.S)
_HTML_PARA = re.compile(r"<p>(.*?)</p>", re.S)
_VERSION_NOTE = re.compile(r'<span class="versionmodified[^"]*">.*?</span>', re.S)
_NOT_PROSE = re.compile(r"<(pre|table|code|kbd)\b.*?</\1>", re.S)


def sphinx_paragraphs(page: str) -> list[str]:
    """The prose paragraphs of a Sphinx HTML page. Code blocks and tables are removed; inline code
    becomes a backtick, which `acceptable` rejects, so a sentence with code is left out whole."""
    match = _SPHINX_BODY.search(page)
    body = _NOT_PROSE.sub("`", _VERSION_NOTE.sub("", match.group(1) if match else page))
    return [clean(html.unescape(HTML_TAG.sub("", para))) for para in _HTML_PARA.findall(body)]


def load_pydoc(max_words: int = MAX_WORDS) -> list[Sentence]:
    _need(PYDOC_DIR / "index.html", "python3-doc")
    items = []
    for file in sorted(PYDOC_DIR.rglob("*.html")):
        page = file.relative_to(PYDOC_DIR).with_suffix("").as_posix()
        if page.startswith("_"):
            continue
        paragraphs = sphinx_paragraphs(file.read_text(encoding="utf-8"))
        items += page_sentences(f"pydoc/{page}", "pydoc", paragraphs, max_words)
    return items


_ROFF_ESCAPES = (
    (re.compile(r"\\f(?:\[[^]]*\]|\(..|.)"), ""),
    (re.compile(r"\\\((?:lq|rq|dq)"), '"'),
    (re.compile(r"\\\((?:aq|oq|cq)"), "'"),
    (re.compile(r"\\\(em"), " - "),
    (re.compile(r"\\\(en|\\-"), "-"),
    (re.compile(r"\\[ ~]"), " "),
    (re.compile(r"\\[&,/:%|^]"), ""),
)
_ROFF_ARG = re.compile(r'"([^"]*)"|(\S+)')
_FONT_MACRO = re.compile(r"^\.(B|I|SM|SB|BR|RB|BI|IB|IR|RI)(?:\s+(.*))?$")
_SECTION_REF = re.compile(r"^\(\d\w*\)")
_NO_FILL = {".nf": ".fi", ".EX": ".EE", ".TS": ".TE", ".EQ": ".EN"}


def _roff_text(text: str) -> str:
    for pattern, replacement in _ROFF_ESCAPES:
        text = pattern.sub(replacement, text)
    return clean(text)


def _font_macro_text(name: str, arguments: str) -> str:
    """`.BR fork (2),` -> `fork,`: the words of a font macro, without man-page section numbers."""
    words = [quoted or bare for quoted, bare in _ROFF_ARG.findall(arguments)]
    if len(name) == 1 or name in ("SM", "SB"):
        return " ".join(words)
    return "".join(_SECTION_REF.sub("", word) for word in words)


def man_description(source: str) -> list[str]:
    """The paragraphs of the DESCRIPTION section of a man(7) page's roff source. Tables, examples
    (no-fill blocks) and the tags of `.TP` lists are left out; other macros end a paragraph."""
    paragraphs: list[list[str]] = [[]]
    inside = skip_tag = False
    closing = None
    for line in source.splitlines():
        if line.startswith(".SH"):
            if inside:
                break
            inside = line[3:].strip().strip('"').upper() == "DESCRIPTION"
            continue
        if not inside or line.startswith(('.\\"', "'\\\"")):
            continue
        macro = line.split(maxsplit=1)[0] if line.startswith((".", "'")) else None
        if closing is not None:
            closing = None if macro == closing else closing
            continue
        if skip_tag:
            skip_tag = False
            continue
        font = _FONT_MACRO.match(line)
        if font:
            paragraphs[-1].append(_font_macro_text(font.group(1), font.group(2) or ""))
        elif macro is not None:
            closing = _NO_FILL.get(macro)
            skip_tag = macro == ".TP"
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    return [text for text in (_roff_text(" ".join(p)) for p in paragraphs) if text]


def _manpage_files() -> list[Path]:
    """The roff sources the MANPAGE_PACKAGES install (aliases, links and `.so` stubs left out)."""
    if shutil.which("dpkg-query") is None:
        raise NekoError("dpkg-query not found; the manpages source reads Debian's package lists")
    result = subprocess.run(
        ["dpkg-query", "-L", *MANPAGE_PACKAGES], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        packages = ", ".join(f"'{name}'" for name in MANPAGE_PACKAGES)
        raise NekoError(f"man pages not found; install the Debian packages {packages} (scripts/setup.sh)")
    paths = (Path(line) for line in result.stdout.splitlines() if "/man/man" in line)
    files = sorted(p for p in paths if p.suffix == ".gz" and p.is_file() and not p.is_symlink())
    if not files:
        raise NekoError(
            f"the packages {', '.join(MANPAGE_PACKAGES)} are installed without their man pages "
            "(a dpkg path-exclude?); reinstall them with /usr/share/man kept"
        )
    return files


def load_manpages(max_words: int = MAX_WORDS) -> list[Sentence]:
    items = []
    for file in _manpage_files():
        with gzip.open(file, "rt", encoding="utf-8", errors="replace") as handle:
            source = handle.read()
        if source.startswith(".so "):
            continue
        page = file.name.removesuffix(".gz")
        items += page_sentences(f"manpages/{page}", "manpages", man_description(source), max_words)
    return items


def _kjv_verses() -> dict[str, str]:
    path = cache_dir() / "bible-kjv.json"
    if path.exists():
        return read_json(path)
    verses = _export_bible(KJV_MODULE)
    write_json(path, verses, indent=None)
    return verses


def _held_out_verse_keys(max_words: int) -> set[str]:
    """The verse keys whose World English Bible verse is a dev or test sentence of `bible`."""
    return {s.id.removeprefix("bible/") for s in load_source("bible", max_words) if s.split != "train"}


def load_kjv(max_words: int = MAX_WORDS) -> list[Sentence]:
    held_out = _held_out_verse_keys(max_words)
    items = []
    for key, verse in _kjv_verses().items():
        text = clean(verse)
        if key not in held_out and acceptable(text, max_words):
            items.append(Sentence(f"kjv/{key}", text, "kjv"))
    return items


# diatheke renders a commentary's paragraph breaks as runs of spaces.
_COMMENTARY_BREAK = re.compile(r"\s{3,}|<milestone\b[^>]*/>")


def commentary_paragraphs(entries: dict[str, str]) -> list[tuple[str, int, str]]:
    """(verse key, number, text) of each distinct paragraph of a commentary's entries. A range export
    repeats an entry under every verse it covers; each paragraph is kept where it first appears."""
    seen: set[str] = set()
    paragraphs = []
    for key, entry in entries.items():
        for number, piece in enumerate(_COMMENTARY_BREAK.split(entry)):
            text = _osis_to_text(piece)
            if text and text not in seen:
                seen.add(text)
                paragraphs.append((key, number, text))
    return paragraphs


def _load_commentary(name: str, module: str, package: str, max_words: int) -> list[Sentence]:
    """The sentences of a SWORD commentary, without those that quote a KJV verse whose World English
    Bible verse is held out (`quotes_held_out_verse`; the rule of `load_kjv`)."""
    path = cache_dir() / f"commentary-{name}.json"
    if path.exists():
        paragraphs = read_json(path)
    else:
        paragraphs = commentary_paragraphs(_diatheke_entries(module, package))
        write_json(path, paragraphs, indent=None)
    verses = _kjv_verses()
    held_out = _word_runs(verses[key] for key in _held_out_verse_keys(max_words) if key in verses)

    def keep(sentence: str) -> bool:
        return not quotes_held_out_verse(sentence, held_out)

    items = []
    for key, number, text in paragraphs:
        items += paragraph_sentences(f"{name}/{key}/{number}", name, clean(text), max_words, keep)
    return items


_QUOTE_RUN = 6
_WORD = re.compile(r"[a-z]+")


def _word_runs(verses: Iterable[str]) -> frozenset[tuple[str, ...]]:
    """Every run of MIN_WORDS to _QUOTE_RUN consecutive words (lowercase letters) of `verses`."""
    runs = set()
    for verse in verses:
        words = _WORD.findall(verse.lower())
        for size in range(MIN_WORDS, _QUOTE_RUN + 1):
            runs.update(tuple(words[i : i + size]) for i in range(len(words) - size + 1))
    return frozenset(runs)


def quotes_held_out_verse(sentence: str, held_out: frozenset[tuple[str, ...]]) -> bool:
    """Whether a sentence shares a run of _QUOTE_RUN words with a held-out verse, or is one whole
    (commentaries quote verses in part: `They compassed me about also with words of hatred.`)."""
    words = _WORD.findall(sentence.lower())
    size = min(len(words), _QUOTE_RUN)
    return any(tuple(words[i : i + size]) in held_out for i in range(len(words) - size + 1))


def load_mhcc(max_words: int = MAX_WORDS) -> list[Sentence]:
    return _load_commentary("mhcc", "MHCC", "sword-comm-mhcc", max_words)


def load_tdavid(max_words: int = MAX_WORDS) -> list[Sentence]:
    return _load_commentary("tdavid", "TDavid", "sword-comm-tdavid", max_words)


def _versioned_dir(pattern: str, package: str) -> Path:
    """The newest installed folder matching `pattern` (`linux-doc-6.1`, `perl/5.36.0`)."""
    found = [Path(p) for p in sorted(glob.glob(pattern))]
    if not found:
        raise NekoError(f"{pattern} not found; install the Debian package '{package}' (scripts/setup.sh)")
    return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.as_posix())])


def load_linuxdoc(max_words: int = MAX_WORDS) -> list[Sentence]:
    """The Linux kernel documentation's Sphinx HTML, its translations left out."""
    root = _versioned_dir(LINUXDOC_GLOB, "linux-doc")
    items = []
    for file in sorted(root.rglob("*.html")):
        page = file.relative_to(root).with_suffix("").as_posix()
        if page.startswith(("_", "translations/")):
            continue
        paragraphs = sphinx_paragraphs(file.read_text(encoding="utf-8", errors="replace"))
        items += page_sentences(f"linuxdoc/{page}", "linuxdoc", paragraphs, max_words)
    return items


_POD_CODE = re.compile(r"[CF]<(?:<+\s.*?\s>+|[^<>]*)>", re.S)
_POD_LINK = re.compile(r"L<([^<>|]*)\|[^<>]*>")
_POD_PAGE = re.compile(r"L<[^<>]*>")
_POD_INDEX = re.compile(r"X<[^<>]*>")
_POD_FORMAT = re.compile(r"[BIS]<([^<>]*)>")
_POD_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "apos": "'"}
_POD_ESCAPE = re.compile(r"E<(\w+)>")
# perldiag's message classes: `(W syntax) You assigned ...`
_POD_DIAGNOSTIC = re.compile(r"^\([A-Z](?: [\w,]+)*\) ")


def pod_paragraphs(pod: str) -> list[str]:
    """The text paragraphs of a POD document. Verbatim (indented) paragraphs, commands and `=begin`
    blocks are left out; code and file names (`C<>`, `F<>`) and links to pages become a backtick,
    which `acceptable` rejects, so a sentence with code is left out whole."""
    paragraphs = []
    inside_block = False
    for para in re.split(r"\n[ \t]*\n", pod):
        if para.startswith("=begin"):
            inside_block = True
        elif para.startswith("=end"):
            inside_block = False
        if inside_block or not para.strip() or para[0] in " \t=":
            continue
        text = _POD_INDEX.sub("", _POD_CODE.sub("`", para))
        text = _POD_PAGE.sub("`", _POD_LINK.sub(r"\1", text))
        text = _POD_ESCAPE.sub(lambda m: _POD_ESCAPES.get(m.group(1), m.group(0)), text)
        for _ in range(3):
            text = _POD_FORMAT.sub(r"\1", text)
        paragraphs.append(_POD_DIAGNOSTIC.sub("", clean(text)))
    return paragraphs


def load_perldoc(max_words: int = MAX_WORDS) -> list[Sentence]:
    root = _versioned_dir(PERLDOC_GLOB, "perl-doc")
    items = []
    for file in sorted(root.glob("*.pod")):
        paragraphs = pod_paragraphs(file.read_text(encoding="utf-8", errors="replace"))
        items += page_sentences(f"perldoc/{file.stem}", "perldoc", paragraphs, max_words)
    return items


_DICT_LABEL = re.compile(r"^(?:\d+\. )?(?:(?:<[^<>]*>|\[[^]]*\]) ?)*")
_DICT_REFERENCE = re.compile(r"\{\s*([^{}]*?)\s*\}")
_CROSS_REFERENCE = ("See ", "Compare ")


def dictd_paragraphs(text: str, indent: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of the definition paragraphs of a dictd file: runs of lines indented by
    exactly `indent` spaces (headwords, pronunciations, verse and examples are indented otherwise),
    without the leading sense number and labels (`<programming>`, `[common]`) and with the braces
    of cross-references (`{object}`) removed."""
    block: list[str] = []
    start = 0
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if len(line) - len(line.lstrip(" ")) == indent and line.strip():
            start = start if block else number
            block.append(line.strip())
            continue
        if block:
            yield start, _DICT_REFERENCE.sub(r"\1", _DICT_LABEL.sub("", " ".join(block)))
        block = []


def _load_dictd(name: str, path: Path, package: str, indent: int, max_words: int) -> list[Sentence]:
    """The definition sentences of a dictd dictionary; `See ...`/`Compare ...` lists of
    cross-references are left out."""
    _need(path, package)
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    items = []
    for line, para in dictd_paragraphs(text, indent):
        items += paragraph_sentences(
            f"{name}/{line}", name, clean(para), max_words, lambda s: not s.startswith(_CROSS_REFERENCE)
        )
    return items


def load_foldoc(max_words: int = MAX_WORDS) -> list[Sentence]:
    return _load_dictd("foldoc", FOLDOC_DICT, "dict-foldoc", 3, max_words)


def load_jargon(max_words: int = MAX_WORDS) -> list[Sentence]:
    return _load_dictd("jargon", JARGON_DICT, "dict-jargon", 4, max_words)


_LOADERS = {
    "captions": load_captions,
    "bible": load_bible,
    "kjv": load_kjv,
    "wordnet": load_wordnet,
    "fortunes": load_fortunes,
    "handbook": load_handbook,
    "gcide": load_gcide,
    "pydoc": load_pydoc,
    "manpages": load_manpages,
    "linuxdoc": load_linuxdoc,
    "mhcc": load_mhcc,
    "tdavid": load_tdavid,
    "perldoc": load_perldoc,
    "foldoc": load_foldoc,
    "jargon": load_jargon,
}


@cache
def load_source(name: str, max_words: int = MAX_WORDS) -> tuple[Sentence, ...]:
    """All sentences of a source of up to `max_words` words, filtered and deduplicated, in a fixed
    order."""
    if name not in _LOADERS:
        raise NekoError(f"unknown text source {name!r}; expected one of {', '.join(SOURCES)}")
    return tuple(_deduplicate(_LOADERS[name](max_words)))


def sentences(name: str, split: str, max_words: int = MAX_WORDS) -> list[Sentence]:
    """The sentences of a source that belong to a split (see `neko.data.splits`), of up to `max_words`
    words. Up to MAX_WORDS they are taken from the MAX_WORDS load, the pool every corpus was built
    from; a longer limit loads the source again with that limit (language-model text)."""
    pool = load_source(name) if max_words <= MAX_WORDS else load_source(name, max_words)
    return [s for s in pool if s.split == split and len(s.text.split()) <= max_words]
