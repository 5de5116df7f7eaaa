"""ASR N-best lists with the errors of a strong modern recognizer, made from clean text.

A modern recognizer (the ones behind HyPoradise) gets most sentences right; its errors are format and
spelling choices of its language model and confusions of words that sound alike: compounds split or
merged ("nonstop" / "non stop", "u s" / "us"), numbers as digits ("25", "1st") or hyphenated
("twenty-five"), ordinals for cardinals, contractions, homophones ("fare" / "fair") and
near-homophones ("flights" / "flight"), spelling variants ("color" / "colour"), dropped, inserted and
swapped function words, and a word sequence heard with other word boundaries ("a nice" / "an ice").
Its N-best list mostly repeats the 1-best and differs from it at one or two places.

`confusions(words, lexicon)` lists every such edit a reference allows. `nbest(words, lexicon, rng)`
draws the 1-best's errors (a sentence is erroneous with probability 1 - exp(-ERROR_ONSET * length);
then 1 + Poisson(EXTRA_REGIONS_PER_WORD * length) error regions, each of a kind drawn with
KIND_WEIGHTS among the kinds the sentence allows), then the places where the N-best hesitates: each
1-best error offers the correct words (FIX_SHARE) or another wrong version (ALTERNATIVE_SHARE), and
Poisson(SPOTS_PER_WORD * length) further places offer a new error. Each place has an exponential
cost; the hypotheses are the sets of changed places in increasing total cost, and every distinct text
repeats (as HyPoradise's lists do, its beams differ below the word level) at cost gaps with mean
DUPLICATE_GAP. The constants are calibrated so that the 1-best WER, the share of error-free 1-bests
and the N-best diversity match HyPoradise's ATIS training file (the datasheet, data/README.md, has
the measured and the synthetic numbers; `scripts/nbest-profile.py` measures both).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from neko.data.builders.common import SOURCES, ZERO_SHOT_SOURCE, Job, job_rng, sentence_jobs
from neko.data.builders.lexicon import (
    CARDINALS,
    CONTRACTIONS,
    EXPANSIONS,
    FUNCTION_WORDS,
    NUMBER_WORDS,
    ORDINALS,
    Pronunciation,
    american_spelling,
    digits_of,
    number_value,
    pronunciations,
)
from neko.data.builders.speech import spoken_form
from neko.data.schema import Example
from neko.data.sources import sentences

NBEST = 5
KIND_WEIGHTS = {
    "compound": 35,
    "number": 40,
    "homophone": 4,
    "spelling": 3,
    "near_homophone": 1.5,
    "contraction": 3,
    "function_deletion": 1.5,
    "function_insertion": 0.4,
    "function_substitution": 0.4,
    "resegmentation": 15,
}
ERROR_ONSET = 0.05
EXTRA_REGIONS_PER_WORD = 0.05
FIX_SHARE = 0.6
ALTERNATIVE_SHARE = 0.25
SPOTS_PER_WORD = 0.09
DUPLICATE_GAP = 0.7
DIFFICULTY_SHAPE = 1.5
MAX_SPOTS = 6
# Recognizers merge words more often than they split them (HyPoradise: "d c" -> "dc", "u s" -> "us").
SPLIT_WEIGHT = 0.3
SAME_STEM_WEIGHT = 10.0
# A replacement word must occur this often in the lexicon's text (not a rare name or a typo).
MIN_COUNT = 5
# Words read across other boundaries must be frequent ones: a strong language model allows no others.
RESEGMENTATION_MIN_COUNT = 100
LEXICON_SOURCES = ("captions", "bible", "wordnet", "handbook")
# Function words that recognizers insert, and those they swap for each other.
INSERTED_WORDS = {"the": 5, "a": 4, "and": 3, "to": 3, "of": 2, "in": 2, "is": 1, "that": 1, "i": 1}
FUNCTION_SWAPS = [
    {"a", "the", "to", "of"},
    {"in", "on", "and", "an"},
    {"for", "from", "four"},
    {"is", "was", "as", "his"},
    {"are", "were", "our"},
    {"this", "these", "that", "the"},
    {"at", "that", "it"},
    {"with", "which"},
    {"then", "than", "and"},
]
_ALPHA = re.compile(r"[a-z]+")
_HYPHENATED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


@dataclass(frozen=True)
class Edit:
    """Replace reference words [start, end) by `words` (an insertion when start == end)."""

    kind: str
    start: int
    end: int
    words: tuple[str, ...]
    weight: float = field(default=1.0, compare=False)

    def conflicts(self, other: Edit) -> bool:
        """Overlapping or touching edits would merge into one region: at most one per place."""
        return self.start <= other.end and other.start <= self.end

    def record(self, reference: list[str]) -> dict[str, object]:
        return {
            "kind": self.kind,
            "position": self.start,
            "reference": " ".join(reference[self.start : self.end]),
            "hypothesis": " ".join(self.words),
        }


def apply(reference: list[str], edits: Iterable[Edit]) -> list[str]:
    words: list[str] = []
    position = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        words += reference[position : edit.start]
        words += edit.words
        position = edit.end
    return words + reference[position:]


def _levenshtein_one(a: Pronunciation, b: Pronunciation) -> bool:
    """Exactly one phone inserted, deleted or substituted."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _same_letters(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One word for two with the same letters ("a head" / "ahead") is a compound, not a resegmentation."""
    return len(a) != len(b) and "".join(a) == "".join(b)


def _deletions(pron: Pronunciation) -> set[Pronunciation]:
    return {pron[:i] + pron[i + 1 :] for i in range(len(pron))}


class Lexicon:
    """What sounds like what, among words frequent enough in the text to be a recognizer's choice.

    `prons`: every dictionary word's pronunciations; `counts`: word frequencies of the text the
    replacements are chosen by; `hyphenated`: word pairs the text writes with a hyphen.
    """

    def __init__(
        self,
        prons: dict[str, frozenset[Pronunciation]],
        counts: Counter[str],
        hyphenated: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.prons = prons
        self.counts = counts
        self.hyphenated = frozenset(hyphenated)
        self.common = sorted(w for w, c in counts.items() if c >= MIN_COUNT and w in prons)
        self.by_phones: dict[Pronunciation, list[str]] = {}
        self.by_deletion: dict[Pronunciation, list[str]] = {}
        for word in self.common:
            for pron in prons[word]:
                self.by_phones.setdefault(pron, []).append(word)
                for shorter in _deletions(pron):
                    self.by_deletion.setdefault(shorter, []).append(word)
        self.variants: dict[str, set[str]] = {}
        for word in sorted(prons):
            american = american_spelling(word)
            if american and american in prons and prons[american] & prons[word]:
                self.variants.setdefault(word, set()).add(american)
                self.variants.setdefault(american, set()).add(word)
        self._memo: dict[tuple[str, str], list[str]] = {}

    def sounds_split(self, word: str, k: int) -> bool:
        """Whether `word` is pronounced as its first k letters followed by the rest (back+ground)."""
        left, right = self.prons.get(word[:k], ()), self.prons.get(word[k:], ())
        return any(a + b in self.prons.get(word, ()) for a in left for b in right)

    def _readable(self, word: str) -> bool:
        """A frequent word, and no lone letter: what a strong language model lets through."""
        return self.counts.get(word, 0) >= RESEGMENTATION_MIN_COUNT and (len(word) > 1 or word in "ai")

    def is_common(self, word: str) -> bool:
        return self.counts.get(word, 0) >= MIN_COUNT

    def spelling_variants(self, word: str) -> list[str]:
        """British <-> American forms of `word` that the dictionary pronounces the same."""
        return sorted(self.variants.get(word, ()))

    def homophones_any(self, word: str) -> list[str]:
        """Common words sharing a pronunciation with `word`."""
        return sorted({w for p in self.prons.get(word, ()) for w in self.by_phones.get(p, ()) if w != word})

    def homophones(self, word: str) -> list[str]:
        """Common homophones of `word` other than its spelling variants."""
        key = ("homophone", word)
        if key not in self._memo:
            variants = set(self.spelling_variants(word))
            self._memo[key] = [w for w in self.homophones_any(word) if w not in variants]
        return self._memo[key]

    def near_homophones(self, word: str) -> list[str]:
        """Common words one phone away from `word` (flights -> flight, fights; ten -> den)."""
        key = ("near", word)
        if key not in self._memo:
            found: set[str] = set()
            for pron in self.prons.get(word, ()):
                if len(pron) < 2:
                    continue
                pool = set(self.by_deletion.get(pron, ()))
                for shorter in _deletions(pron):
                    pool.update(self.by_phones.get(shorter, ()))
                    pool.update(self.by_deletion.get(shorter, ()))
                for other in pool:
                    if other != word and any(_levenshtein_one(pron, q) for q in self.prons[other]):
                        found.add(other)
            same = set(self.homophones_any(word))
            self._memo[key] = sorted(found - same)
        return self._memo[key]

    def resegmentations(self, words: tuple[str, ...]) -> list[tuple[str, ...]]:
        """Other one- or two-word readings of the phones of one or two words ("a nice" -> "an ice")."""
        key = ("reseg", " ".join(words))
        if key not in self._memo:
            found: set[tuple[str, ...]] = set()
            options = [sorted(self.prons.get(w, ())) for w in words]
            for prons in itertools.product(*options):
                phones = tuple(p for pron in prons for p in pron)
                for k in range(1, len(phones)):
                    if len(words) == 2 and k == len(prons[0]):
                        continue  # the same word boundary: two homophones, not a resegmentation
                    for left in self.by_phones.get(phones[:k], ()):
                        for right in self.by_phones.get(phones[k:], ()):
                            found.add((left, right))
                if len(words) == 2:
                    found.update((w,) for w in self.by_phones.get(phones, ()))
            found = {f for f in found if all(self._readable(w) for w in f)}
            self._memo[key] = [
                f
                for f in sorted(found)
                if not _same_letters(f, words) and not set(f) & set(words) and not set(f) <= FUNCTION_WORDS
            ]
        return self._memo[key]


def _weight(lexicon: Lexicon, words: Iterable[str]) -> float:
    return math.sqrt(min(lexicon.counts.get(w, 0) for w in words) + 1)


def _single_word(words: list[str], lexicon: Lexicon) -> list[Edit]:
    edits = []
    for i, word in enumerate(words):
        if not _ALPHA.fullmatch(word):
            continue
        for variant in lexicon.spelling_variants(word):
            edits.append(Edit("spelling", i, i + 1, (variant,)))
        if word in FUNCTION_WORDS:
            continue
        for other in lexicon.homophones(word):
            edits.append(Edit("homophone", i, i + 1, (other,), _weight(lexicon, [other])))
        for other in lexicon.near_homophones(word):
            if other not in FUNCTION_WORDS:
                # Another form of the same word (flights -> flight) is what a language model lets through.
                related = SAME_STEM_WEIGHT if other[:3] == word[:3] else 1.0
                edits.append(Edit("near_homophone", i, i + 1, (other,), related * _weight(lexicon, [other])))
    return edits


def _compounds(words: list[str], lexicon: Lexicon, hyphenated: frozenset[tuple[str, str]]) -> list[Edit]:
    edits = []
    for i, word in enumerate(words):
        if i + 1 < len(words) and _ALPHA.fullmatch(word) and _ALPHA.fullmatch(words[i + 1]):
            pair = (word, words[i + 1])
            if lexicon.is_common(word + pair[1]) and len(word) > 1 and len(pair[1]) > 1:
                edits.append(Edit("compound", i, i + 2, (word + pair[1],)))
            if pair in lexicon.hyphenated or pair in hyphenated:
                edits.append(Edit("compound", i, i + 2, (f"{word}-{pair[1]}",)))
        if _ALPHA.fullmatch(word) and len(word) >= 6:
            for k in range(3, len(word) - 2):
                left, right = word[:k], word[k:]
                if lexicon.is_common(left) and lexicon.is_common(right) and lexicon.sounds_split(word, k):
                    edits.append(Edit("compound", i, i + 1, (left, right), SPLIT_WEIGHT))
    # Spelled letters ("u s a") written as one word.
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and len(words[j]) == 1 and words[j].isalpha():
            j += 1
        if j - i >= 2 and not set(words[i:j]) <= {"a", "i"}:
            edits.append(Edit("compound", i, j, ("".join(words[i:j]),)))
        i = max(j, i + 1)
    return edits


def _numbers(words: list[str]) -> list[Edit]:
    """Spoken numbers as digits ("25", "1st"), hyphenated ("twenty-five"), ordinal <-> cardinal."""
    edits = []
    cardinal_of = {ordinal: word for word, ordinal in zip(CARDINALS, ORDINALS, strict=False)}
    ordinal_of = {v: k for k, v in cardinal_of.items()}
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and words[j] in NUMBER_WORDS:
            j += 1
        span = words[i:j]
        parsed = number_value(span) if span else None
        if parsed is not None:
            value, ordinal = parsed
            edits.append(Edit("number", i, j, (digits_of(value, ordinal),)))
            if len(span) >= 2 and span[-2] in CARDINALS and CARDINALS[span[-2]] >= 20:
                joined = f"{span[-2]}-{span[-1]}"
                edits.append(Edit("number", j - 2, j, (joined,)))
            last = span[-1]
            if last in cardinal_of and cardinal_of[last][:3] == last[:3]:
                edits.append(Edit("number", j - 1, j, (cardinal_of[last],)))
            elif last in ordinal_of and ordinal_of[last][:3] == last[:3]:
                edits.append(Edit("number", j - 1, j, (ordinal_of[last],)))
        i = max(j, i + 1)
    return edits


def _contractions(words: list[str]) -> list[Edit]:
    edits = []
    for i, word in enumerate(words):
        if (word,) in CONTRACTIONS:
            edits.append(Edit("contraction", i, i + 1, (CONTRACTIONS[(word,)],)))
        if i + 1 < len(words) and (word, words[i + 1]) in CONTRACTIONS:
            edits.append(Edit("contraction", i, i + 2, (CONTRACTIONS[(word, words[i + 1])],)))
        if word in EXPANSIONS:
            edits.append(Edit("contraction", i, i + 1, tuple(EXPANSIONS[word])))
    return edits


def _function_words(words: list[str]) -> list[Edit]:
    edits = []
    for i, word in enumerate(words):
        if word in FUNCTION_WORDS and len(words) > 2:
            edits.append(Edit("function_deletion", i, i + 1, ()))
        for group in FUNCTION_SWAPS:
            if word in group:
                edits += [Edit("function_substitution", i, i + 1, (w,)) for w in sorted(group - {word})]
    for i in range(1, len(words)):
        for inserted, weight in INSERTED_WORDS.items():
            if inserted not in (words[i - 1], words[i]):
                edits.append(Edit("function_insertion", i, i, (inserted,), weight))
    return edits


def _resegmentations(words: list[str], lexicon: Lexicon) -> list[Edit]:
    edits = []
    for i, word in enumerate(words):
        if _ALPHA.fullmatch(word) and word not in FUNCTION_WORDS:
            edits += [Edit("resegmentation", i, i + 1, r) for r in lexicon.resegmentations((word,))]
        if i + 1 < len(words) and _ALPHA.fullmatch(word) and _ALPHA.fullmatch(words[i + 1]):
            pair = (word, words[i + 1])
            edits += [Edit("resegmentation", i, i + 2, r) for r in lexicon.resegmentations(pair)]
    return edits


def confusions(
    words: list[str], lexicon: Lexicon, hyphenated: frozenset[tuple[str, str]] = frozenset()
) -> dict[str, list[Edit]]:
    """Every edit of each kind the reference `words` allows (kinds with none are left out)."""
    edits = [
        *_single_word(words, lexicon),
        *_compounds(words, lexicon, hyphenated),
        *_numbers(words),
        *_contractions(words),
        *_function_words(words),
        *_resegmentations(words, lexicon),
    ]
    by_kind: dict[str, list[Edit]] = {}
    for edit in edits:
        if edit.words != tuple(words[edit.start : edit.end]):
            by_kind.setdefault(edit.kind, []).append(edit)
    return by_kind


def _draw(by_kind: dict[str, list[Edit]], taken: list[Edit], rng: random.Random) -> Edit | None:
    """An edit of a kind drawn by KIND_WEIGHTS that leaves the places of `taken` alone."""
    free = {k: [e for e in v if not any(e.conflicts(t) for t in taken)] for k, v in by_kind.items()}
    kinds = [k for k in KIND_WEIGHTS if free.get(k)]
    if not kinds:
        return None
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    options = free[kind]
    return rng.choices(options, weights=[e.weight for e in options])[0]


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean and count < 50:
        count += 1
        total += rng.expovariate(1.0)
    return count


@dataclass
class Spot:
    """A place where the N-best hesitates between the 1-best's reading and `alternative`."""

    current: Edit | None
    alternative: Edit | None
    cost: float


def _spots(errors: list[Edit], by_kind: dict[str, list[Edit]], length: int, rng: random.Random) -> list[Spot]:
    spots = []
    for error in errors:
        roll = rng.random()
        if roll < FIX_SHARE:
            spots.append(Spot(error, None, rng.expovariate(1.0)))
        elif roll < FIX_SHARE + ALTERNATIVE_SHARE:
            others = [o for o in errors if o is not error]
            nearby = [
                e
                for edits in by_kind.values()
                for e in edits
                if e.conflicts(error) and e != error and not any(e.conflicts(o) for o in others)
            ]
            if nearby:
                spots.append(Spot(error, rng.choice(nearby), rng.expovariate(1.0)))
    taken = errors + [s.alternative for s in spots if s.alternative is not None]
    for _ in range(_poisson(rng, SPOTS_PER_WORD * length)):
        edit = _draw(by_kind, taken, rng)
        if edit is None:
            break
        taken.append(edit)
        spots.append(Spot(None, edit, rng.expovariate(1.0)))
    return sorted(spots, key=lambda s: s.cost)[:MAX_SPOTS]


def nbest(
    words: list[str],
    lexicon: Lexicon,
    rng: random.Random,
    hyphenated: frozenset[tuple[str, str]] = frozenset(),
) -> list[tuple[list[str], list[Edit]]]:
    """NBEST hypotheses of the reference `words`, best first, each with the edits it contains.

    `hyphenated`: word pairs that the source text wrote with a hyphen (the reference has a space).
    """
    by_kind = confusions(words, lexicon, hyphenated)
    # How hard the utterance is: hard ones have more errors and a more varied N-best.
    difficulty = rng.gammavariate(DIFFICULTY_SHAPE, 1 / DIFFICULTY_SHAPE)
    length = len(words) * difficulty
    errors: list[Edit] = []
    if rng.random() < 1 - math.exp(-ERROR_ONSET * length):
        for _ in range(1 + _poisson(rng, EXTRA_REGIONS_PER_WORD * length)):
            edit = _draw(by_kind, errors, rng)
            if edit is None:
                break
            errors.append(edit)
    spots = _spots(errors, by_kind, length, rng)
    readings: list[tuple[float, list[Edit]]] = []
    for size in range(min(3, len(spots)) + 1):
        for chosen in itertools.combinations(spots, size):
            edits = [e for e in errors if not any(s.current is e for s in chosen)]
            edits += [s.alternative for s in chosen if s.alternative is not None]
            readings.append((sum(s.cost for s in chosen), sorted(edits, key=lambda e: e.start)))
    copies: list[tuple[float, int, list[Edit]]] = []
    for order, (cost, edits) in enumerate(readings):
        for _ in range(NBEST):
            copies.append((cost, order, edits))
            cost += rng.expovariate(1 / DUPLICATE_GAP)
    copies.sort(key=lambda c: (c[0], c[1]))
    best = [(apply(words, edits), edits) for _, _, edits in copies[:NBEST]]
    return best


@cache
def default_lexicon() -> Lexicon:
    """The CMU dictionary of pocketsphinx, with word counts of the train split of LEXICON_SOURCES."""
    counts: Counter[str] = Counter()
    hyphenated: Counter[tuple[str, str]] = Counter()
    for source in LEXICON_SOURCES:
        for sentence in sentences(source, "train"):
            counts.update(spoken_form(sentence.text).split())
            for match in re.finditer(r"\b([A-Za-z]+)-([A-Za-z]+)\b", sentence.text):
                hyphenated[match.group(1).lower(), match.group(2).lower()] += 1
    compounds = [
        pair for pair, count in hyphenated.items() if count >= MIN_COUNT and not set(pair) & FUNCTION_WORDS
    ]
    return Lexicon(pronunciations(), counts, sorted(compounds))


def setup() -> Lexicon:
    return default_lexicon()


def plan(split: str, count: int, seed: int) -> list[Job]:
    return sentence_jobs("modern", split, count, seed, SOURCES)


def hyphenated_pairs(text: str) -> frozenset[tuple[str, str]]:
    """Adjacent words the text joins with a hyphen ("middle-aged" -> ("middle", "aged"))."""
    pairs = set()
    for match in _HYPHENATED.finditer(text.lower()):
        parts = match.group(0).split("-")
        pairs.update(itertools.pairwise(parts))
    return frozenset(pairs)


def work(lexicon: Lexicon, job: Job) -> Example:
    p = job.params
    reference = spoken_form(p["text"])
    words = reference.split()
    rng = job_rng(p["seed"], "modern", p["split"], job.index)
    hypotheses = nbest(words, lexicon, rng, hyphenated_pairs(p["text"]))
    metadata = {
        "source": p["source"],
        "source_id": p["text_id"],
        "source_text": p["text"],
        "confusions": [[e.record(words) for e in edits] for _, edits in hypotheses],
        "zero_shot": p["source"] == ZERO_SHOT_SOURCE,
        "recognizer": "synthetic-modern",
    }
    return Example(
        id=job.id,
        task="asr",
        hypotheses=[" ".join(h) for h, _ in hypotheses],
        reference=reference,
        dataset=f"modern/{p['source']}",
        metadata=metadata,
    )
