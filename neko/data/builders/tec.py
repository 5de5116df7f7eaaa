"""TEC data: grammatical and spelling errors injected into clean English; and JFLEG dev.

`corrupt(text, rng, noise)` keeps a sentence unchanged with probability `noise.keep_rate` (a
corrector must learn to copy correct text); otherwise it applies 1 + geometric extra errors, each of
a type drawn with `noise.weights`; a type that does not apply to the sentence is redrawn. Two noise
models: `SYNTHETIC` (the `tec/{train,dev,test}` files: a fixed mean of ERRORS_MEAN errors) and
`LEARNER` (the `tec/learner-*` files: matched to real learner English, JFLEG dev's first half as
ERRANT sees it with `scripts/edit-profile.py`: errors in proportion to the sentence's length, few
spelling errors, word-choice confusions, dropped punctuation). Everything is a function of the
seeded random generator, so a build is deterministic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from neko.data.builders.common import SOURCES, ZERO_SHOT_SOURCE, Job, job_rng, sentence_jobs
from neko.data.schema import Example
from neko.errors import NekoError
from neko.io import read_lines

KEEP_RATE = 0.15
ERRORS_MEAN = 1.8
ERROR_WEIGHTS = {
    "determiner": 12,
    "preposition": 10,
    "verb_form": 9,
    "tense": 7,
    "agreement": 8,
    "noun_number": 9,
    "spelling": 14,
    "word_order": 5,
    "missing_word": 7,
    "extra_word": 6,
    "punctuation": 8,
    "capitalisation": 5,
}
LEARNER_WEIGHTS = {
    "determiner": 6,
    "preposition": 4,
    "verb_form": 4,
    "tense": 2,
    "agreement": 5,
    "noun_number": 7,
    "spelling": 7,
    "word_choice": 12,
    "word_order": 2,
    "missing_word": 5,
    "extra_word": 5,
    "punctuation": 2,
    "dropped_punctuation": 5,
    "capitalisation": 4,
}
"""ERRANT's edit types of JFLEG dev's first half (`scripts/edit-profile.py`), folded onto the
operations: e.g. determiner = M:DET + R:DET + U:DET, word_choice = R:VERB + R:NOUN + R:ADJ + R:ADV.
Its rewrites of whole phrases (R:OTHER, 14% of its edits) have no operation."""
LEARNER_ERRORS_PER_WORD = 0.32


@dataclass(frozen=True)
class Noise:
    """An error model: how many sentences stay clean, how many errors the others get (a fixed mean,
    or `errors_per_word` times the sentence's length, at least 1, at most `most_errors`), of which
    types (`weights` over `OPERATIONS`), and the suffix of its dataset names."""

    name: str
    keep_rate: float
    weights: Mapping[str, float]
    errors_mean: float = ERRORS_MEAN
    errors_per_word: float | None = None
    most_errors: int = 5

    def mean_errors(self, words: int) -> float:
        if self.errors_per_word is None:
            return self.errors_mean
        return max(1.0, self.errors_per_word * words)


SYNTHETIC = Noise("synthetic", KEEP_RATE, ERROR_WEIGHTS)
LEARNER = Noise("learner", 0.10, LEARNER_WEIGHTS, errors_per_word=LEARNER_ERRORS_PER_WORD, most_errors=10)
NOISES = {noise.name: noise for noise in (SYNTHETIC, LEARNER)}

DETERMINERS = ["a", "an", "the", "this", "that", "some"]
PREPOSITIONS = ["in", "on", "at", "of", "for", "to", "with", "by", "from", "about", "into", "over"]
EXTRA_WORDS = ["the", "to", "of", "a", "that", "very", "is", "and"]
IRREGULAR = {
    "went": "go",
    "go": "went",
    "goes": "go",
    "gone": "went",
    "saw": "see",
    "seen": "saw",
    "see": "seen",
    "came": "come",
    "come": "came",
    "took": "take",
    "taken": "took",
    "gave": "give",
    "given": "gave",
    "made": "make",
    "make": "made",
    "ran": "run",
    "run": "ran",
    "ate": "eat",
    "eaten": "ate",
    "wrote": "write",
    "written": "wrote",
    "spoke": "speak",
    "said": "say",
    "sat": "sit",
    "stood": "stand",
    "brought": "bring",
    "thought": "think",
    "told": "tell",
}
TENSE = {
    "is": "was",
    "was": "is",
    "are": "were",
    "were": "are",
    "has": "had",
    "had": "has",
    "have": "had",
    "do": "did",
    "did": "does",
    "does": "did",
    "will": "would",
    "would": "will",
    "can": "could",
    "could": "can",
    "shall": "should",
}
AGREEMENT = {
    "is": "are",
    "are": "is",
    "was": "were",
    "were": "was",
    "has": "have",
    "have": "has",
    "does": "do",
    "do": "does",
    "am": "is",
    "this": "these",
    "these": "this",
}
CONFUSIONS = {
    "their": "there",
    "there": "their",
    "its": "it's",
    "it's": "its",
    "your": "you're",
    "then": "than",
    "than": "then",
    "to": "too",
    "lose": "loose",
    "affect": "effect",
    "where": "were",
    "whose": "who's",
    "quite": "quiet",
    "accept": "except",
}
KEYBOARD = "qwertyuiop asdfghjkl zxcvbnm"
_TOKEN = re.compile(r"^([\"'(]*)(.*?)([.,;:!?\"')]*)$")


def _split(token: str) -> tuple[str, str, str]:
    match = _TOKEN.match(token)
    assert match is not None
    return match.group(1), match.group(2), match.group(3)


def _candidates(words: list[str], test: Callable[[str], bool]) -> list[int]:
    return [i for i, w in enumerate(words) if test(_split(w)[1])]


def _replace_core(words: list[str], i: int, core: str) -> None:
    pre, old, post = _split(words[i])
    if old[:1].isupper() and core:
        core = core[0].upper() + core[1:]
    words[i] = pre + core + post


def _determiner(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(words, lambda c: c.lower() in DETERMINERS)
    if not spots:
        nouns = [
            i
            for i in range(1, len(words))
            if _split(words[i])[1].isalpha()
            and words[i].islower()
            and _split(words[i - 1])[1].lower() in PREPOSITIONS
        ]
        if not nouns:
            return False
        i = rng.choice(nouns)
        words.insert(i, rng.choice(["the", "a"]))
        return True
    i = rng.choice(spots)
    if rng.random() < 0.4 and _split(words[i])[2] == "" and _split(words[i])[0] == "":
        del words[i]
        if i == 0 and words:
            _replace_core(words, 0, _split(words[0])[1][:1].upper() + _split(words[0])[1][1:])
    else:
        old = _split(words[i])[1].lower()
        _replace_core(words, i, rng.choice([d for d in DETERMINERS[:3] if d != old]))
    return True


def _preposition(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(words, lambda c: c.lower() in PREPOSITIONS)
    if not spots:
        return False
    i = rng.choice(spots)
    if rng.random() < 0.25 and not _split(words[i])[2]:
        del words[i]
    else:
        old = _split(words[i])[1].lower()
        _replace_core(words, i, rng.choice([p for p in PREPOSITIONS if p != old]))
    return True


def _verb_form(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(
        words, lambda c: c.lower() in IRREGULAR or (len(c) > 5 and c.islower() and c.endswith(("ing", "ed")))
    )
    if not spots:
        return False
    i = rng.choice(spots)
    core = _split(words[i])[1]
    lower = core.lower()
    if lower in IRREGULAR:
        new = IRREGULAR[lower] if rng.random() < 0.6 else lower + "ed"
    elif lower.endswith("ing"):
        new = rng.choice([lower[:-3], lower[:-3] + "ed", lower[:-3] + "s"])
    else:
        new = rng.choice([lower[:-2], lower[:-2] + "ing", lower[:-1]])
    _replace_core(words, i, new)
    return True


def _tense(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(
        words, lambda c: c.lower() in TENSE or (len(c) > 4 and c.islower() and c.endswith("ed"))
    )
    if not spots:
        return False
    i = rng.choice(spots)
    lower = _split(words[i])[1].lower()
    _replace_core(words, i, TENSE.get(lower, lower[:-2] if lower.endswith("ed") else lower))
    return True


def _agreement(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(words, lambda c: c.lower() in AGREEMENT)
    verbs = [
        i
        for i in range(1, len(words))
        if _split(words[i - 1])[1].lower() in ("he", "she", "it", "who")
        and _split(words[i])[1].isalpha()
        and words[i].islower()
    ]
    if not spots and not verbs:
        return False
    i = rng.choice(spots + verbs)
    lower = _split(words[i])[1].lower()
    new = AGREEMENT.get(lower) or (lower[:-1] if lower.endswith("s") else lower + "s")
    _replace_core(words, i, new)
    return True


def _noun_number(words: list[str], rng: random.Random) -> bool:
    spots = [
        i
        for i in range(1, len(words))
        if _split(words[i - 1])[1].lower() in [*DETERMINERS, "two", "many"]
        and len(_split(words[i])[1]) > 2
        and _split(words[i])[1].isalpha()
        and words[i].islower()
    ]
    if not spots:
        return False
    i = rng.choice(spots)
    core = _split(words[i])[1]
    if core.endswith("s") and not core.endswith("ss"):
        new = core[:-2] if core.endswith("es") and rng.random() < 0.5 else core[:-1]
    else:
        new = core + ("es" if core.endswith(("s", "x", "ch", "sh")) else "s")
    _replace_core(words, i, new)
    return True


def _spelling(words: list[str], rng: random.Random) -> bool:
    confusable = _candidates(words, lambda c: c.lower() in CONFUSIONS)
    if confusable and rng.random() < 0.3:
        i = rng.choice(confusable)
        _replace_core(words, i, CONFUSIONS[_split(words[i])[1].lower()])
        return True
    spots = _candidates(words, lambda c: len(c) >= 4 and c.isalpha())
    if not spots:
        return False
    i = rng.choice(spots)
    core = _split(words[i])[1]
    k = rng.randrange(1, len(core) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        new = core[:k] + core[k + 1] + core[k] + core[k + 2 :]
    elif kind == 1:
        new = core[:k] + core[k + 1 :]
    elif kind == 2:
        new = core[:k] + core[k] + core[k:]
    else:
        row = (
            next(r for r in KEYBOARD.split() if core[k].lower() in r)
            if core[k].lower() in KEYBOARD
            else "aeiou"
        )
        j = max(0, min(len(row) - 1, row.find(core[k].lower()) + rng.choice([-1, 1])))
        new = core[:k] + row[j] + core[k + 1 :]
    if new == core:
        new = core[:k] + core[k + 1 :]
    pre, _, post = _split(words[i])
    words[i] = pre + new + post
    return True


def _word_order(words: list[str], rng: random.Random) -> bool:
    spots = [
        i
        for i in range(1, len(words) - 1)
        if not _split(words[i])[2]
        and not _split(words[i + 1])[2]
        and not _split(words[i])[0]
        and words[i].lower() != words[i + 1].lower()
    ]
    if not spots:
        return False
    i = rng.choice(spots)
    words[i], words[i + 1] = words[i + 1], words[i]
    return True


def _missing_word(words: list[str], rng: random.Random) -> bool:
    spots = [i for i in range(1, len(words)) if not _split(words[i])[2] and not _split(words[i])[0]]
    if len(words) < 4 or not spots:
        return False
    del words[rng.choice(spots)]
    return True


def _extra_word(words: list[str], rng: random.Random) -> bool:
    if len(words) < 2:
        return False
    i = rng.randrange(1, len(words))
    if rng.random() < 0.4 and not _split(words[i])[2]:
        words.insert(i, words[i])
    else:
        words.insert(i, rng.choice(EXTRA_WORDS))
    return True


def _punctuation(words: list[str], rng: random.Random, adds: bool = True) -> bool:
    """Drop a comma, an apostrophe or the final stop, or (`adds`) add a comma."""
    commas = [i for i, w in enumerate(words) if w.endswith((",", ";", ":"))]
    apostrophes = [i for i, w in enumerate(words) if "'" in _split(w)[1]]
    options = []
    if commas:
        options.append("drop_comma")
    if apostrophes:
        options.append("drop_apostrophe")
    if words and words[-1].endswith((".", "!", "?")):
        options.append("drop_final")
    if adds and len(words) > 3:
        options.append("add_comma")
    if not options:
        return False
    choice = rng.choice(options)
    if choice == "drop_comma":
        i = rng.choice(commas)
        words[i] = words[i][:-1]
    elif choice == "drop_apostrophe":
        i = rng.choice(apostrophes)
        words[i] = words[i].replace("'", "", 1)
    elif choice == "drop_final":
        words[-1] = words[-1][:-1] if rng.random() < 0.6 else words[-1][:-1] + ","
    else:
        i = rng.randrange(0, len(words) - 2)
        if words[i][-1:].isalnum():
            words[i] += ","
        else:
            return False
    return True


def _capitalisation(words: list[str], rng: random.Random) -> bool:
    options = []
    if words[0][:1].isupper():
        options.append(0)
    lowers = [i for i in range(1, len(words)) if words[i][:1].islower()]
    uppers = [i for i in range(1, len(words)) if words[i][:1].isupper()]
    options += lowers[:3] + uppers
    if not options:
        return False
    i = rng.choice(options)
    words[i] = words[i][:1].swapcase() + words[i][1:]
    return True


WORD_CHOICES = [
    (("make", "makes", "made", "making"), ("do", "does", "did", "doing")),
    (("say", "says", "said", "saying"), ("tell", "tells", "told", "telling")),
    (("speak", "speaks", "spoke", "speaking"), ("talk", "talks", "talked", "talking")),
    (("see", "sees", "saw", "seeing"), ("look", "looks", "looked", "looking")),
    (("watch", "watches", "watched", "watching"), ("see", "sees", "saw", "seeing")),
    (("hear", "hears", "heard", "hearing"), ("listen", "listens", "listened", "listening")),
    (("bring", "brings", "brought", "bringing"), ("take", "takes", "took", "taking")),
    (("learn", "learns", "learned", "learning"), ("teach", "teaches", "taught", "teaching")),
    (("borrow", "borrows", "borrowed", "borrowing"), ("lend", "lends", "lent", "lending")),
    (("raise", "raises", "raised", "raising"), ("rise", "rises", "rose", "rising")),
    (("win", "wins", "won", "winning"), ("earn", "earns", "earned", "earning")),
    (("come", "comes", "came", "coming"), ("go", "goes", "went", "going")),
    (("get", "gets", "got", "getting"), ("take", "takes", "took", "taking")),
    (("job",), ("work",)),
    (("house",), ("home",)),
    (("trip",), ("travel",)),
    (("advice",), ("advise",)),
    (("chance",), ("opportunity",)),
    (("people",), ("persons",)),
    (("fun",), ("funny",)),
    (("boring",), ("bored",)),
    (("interesting",), ("interested",)),
    (("big",), ("great",)),
    (("many",), ("much",)),
    (("few",), ("little",)),
    (("another",), ("other",)),
    (("also",), ("too",)),
    (("most",), ("almost",)),
    (("while",), ("during",)),
    (("each",), ("every",)),
    (("economic",), ("economical",)),
]
"""Words learners confuse, in both directions; a verb's forms (base, -s, past, -ing) map form to form
(a word in two pairs takes the later one's partner)."""
_CHOICES = {
    form: other
    for first, second in WORD_CHOICES
    for forms, others in ((first, second), (second, first))
    for form, other in zip(forms, others, strict=True)
}


def _word_choice(words: list[str], rng: random.Random) -> bool:
    spots = _candidates(words, lambda core: core.lower() in _CHOICES)
    if not spots:
        return False
    i = rng.choice(spots)
    _replace_core(words, i, _CHOICES[_split(words[i])[1].lower()])
    return True


OPERATIONS: dict[str, Callable[[list[str], random.Random], bool]] = {
    "determiner": _determiner,
    "preposition": _preposition,
    "verb_form": _verb_form,
    "tense": _tense,
    "agreement": _agreement,
    "noun_number": _noun_number,
    "spelling": _spelling,
    "word_order": _word_order,
    "missing_word": _missing_word,
    "extra_word": _extra_word,
    "punctuation": _punctuation,
    "capitalisation": _capitalisation,
    "word_choice": _word_choice,
    "dropped_punctuation": partial(_punctuation, adds=False),
}


def corrupt(text: str, rng: random.Random, noise: Noise = SYNTHETIC) -> tuple[str, list[str]]:
    """The corrupted sentence and the error types applied (empty when kept unchanged)."""
    if rng.random() < noise.keep_rate:
        return text, []
    words = text.split()
    mean = noise.mean_errors(len(words))
    wanted = 1
    while rng.random() < (mean - 1) / mean and wanted < noise.most_errors:
        wanted += 1
    names, weights = list(noise.weights), list(noise.weights.values())
    applied: list[str] = []
    for _ in range(wanted * 6):
        if len(applied) == wanted:
            break
        name = rng.choices(names, weights=weights)[0]
        trial = list(words)
        if OPERATIONS[name](trial, rng) and trial and " ".join(trial) not in (" ".join(words), text):
            words = trial
            applied.append(name)
    return " ".join(words), applied


def stream(noise: Noise) -> str:
    """The name that seeds a noise model's choice of sentences and its random draws (and starts its
    example ids): `tec` for the synthetic files, `tec-learner` for the learner ones."""
    return "tec" if noise is SYNTHETIC else f"tec-{noise.name}"


def plan(split: str, count: int, seed: int, noise: Noise = SYNTHETIC) -> list[Job]:
    jobs = sentence_jobs(stream(noise), split, count, seed, SOURCES)
    if noise is not SYNTHETIC:
        for job in jobs:
            job.params["noise"] = noise.name
    return jobs


def work(state: object, job: Job) -> Example:
    p = job.params
    noise = NOISES[p.get("noise", SYNTHETIC.name)]
    corrupted, errors = corrupt(p["text"], job_rng(p["seed"], stream(noise), p["split"], job.index), noise)
    metadata = {
        "source": p["source"],
        "source_id": p["text_id"],
        "source_text": p["text"],
        "errors": errors,
        "zero_shot": p["source"] == ZERO_SHOT_SOURCE,
        "recognizer": "synthetic",
    }
    return Example(
        id=job.id,
        task="tec",
        hypotheses=[corrupted],
        reference=p["text"],
        dataset=f"{p['source']}/{noise.name}",
        metadata=metadata,
    )


def jfleg_examples(corpora: Path) -> list[Example]:
    """JFLEG dev as a validation set: hypothesis = the learner's sentence, references = 4 corrections."""
    folder = corpora / "jfleg" / "dev"
    names = ["dev.src", *(f"dev.ref{k}" for k in range(4))]
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise NekoError(f"JFLEG dev not found: {folder / missing[0]}; set NEKO_CORPORA to the corpora folder")
    columns = [read_lines(folder / n) for n in names]
    if len({len(c) for c in columns}) != 1:
        raise NekoError(f"{folder}: dev.src and dev.ref0..3 have different numbers of lines")
    examples = []
    for number, (source, *refs) in enumerate(zip(*columns, strict=True), start=1):
        refs = [" ".join(r.split()) for r in refs]
        examples.append(
            Example(
                id=f"jfleg-dev-{number:04d}",
                task="tec",
                hypotheses=[" ".join(source.split())],
                reference=refs[0],
                extra_references=refs[1:],
                dataset="jfleg",
                metadata={
                    "source": "jfleg",
                    "line": number,
                    "license": "CC BY-NC-SA 4.0",
                    "never_train": True,
                },
            )
        )
    return examples
