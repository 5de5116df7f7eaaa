"""The modern-recognizer N-best builder: each confusion kind, determinism, workers, splits, references."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from neko.data.builders import common, modern
from neko.data.builders.lexicon import digits_of, number_value, parse_pronunciations
from neko.data.builders.modern import Lexicon, confusions, nbest
from neko.data.builders.speech import spoken_form
from neko.data.jsonl import read_jsonl
from neko.data.sources import Sentence
from neko.data.splits import check_disjoint, split_of

# A pocketsphinx-style dictionary excerpt (phones without stress; "(2)" marks a variant).
DICTIONARY = """\
a AH
a(2) EY
an AE N
an(2) AH N
the DH AH
nice N AY S
ice AY S
fare F EH R
fair F EH R
flights F L AY T S
flight F L AY T
color K AH L ER
colour K AH L ER
back B AE K
ground G R AW N D
background B AE K G R AW N D
non N AA N
stop S T AA P
nonstop N AA N S T AA P
middle M IH D AH L
aged EY JH D
man M AE N
took T UH K
dog D AO G
street S T R IY T
""".splitlines()
COUNTS = Counter(
    {w: 200 for w in ["a", "an", "the", "nice", "ice", "fare", "fair", "flights", "flight", "man", "dog"]}
    | {w: 50 for w in ["color", "back", "ground", "non", "stop", "nonstop", "middle", "aged", "took"]}
)


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon(parse_pronunciations(DICTIONARY), COUNTS)


def _produces(words: str, kind: str, replaced: str, becomes: str, lexicon: Lexicon, **kw: object) -> None:
    reference = words.split()
    edits = confusions(reference, lexicon, **kw).get(kind, [])
    made = {(" ".join(reference[e.start : e.end]), " ".join(e.words)) for e in edits}
    assert (replaced, becomes) in made, f"{kind} of {words!r}: {sorted(made)}"
    for edit in edits:
        assert edit.words != tuple(reference[edit.start : edit.end])


def test_every_confusion_kind_does_what_it_claims(lexicon: Lexicon):
    _produces("the fare is low", "homophone", "fare", "fair", lexicon)
    _produces("two flights left", "near_homophone", "flights", "flight", lexicon)
    _produces("a color photo", "spelling", "color", "colour", lexicon)
    _produces("a nonstop run", "compound", "nonstop", "non stop", lexicon)
    _produces("a non stop run", "compound", "non stop", "nonstop", lexicon)
    _produces("the background music", "compound", "background", "back ground", lexicon)
    _produces("a man from the u s", "compound", "u s", "us", lexicon)
    hyphens = modern.hyphenated_pairs("A middle-aged man.")
    _produces("a middle aged man", "compound", "middle aged", "middle-aged", lexicon, hyphenated=hyphens)
    _produces("on may twenty five", "number", "twenty five", "25", lexicon)
    _produces("on may twenty five", "number", "twenty five", "twenty-five", lexicon)
    _produces("the first dog", "number", "first", "1st", lexicon)
    _produces("june sixth", "number", "sixth", "six", lexicon)
    _produces("i do not know", "contraction", "do not", "don't", lexicon)
    _produces("it's a dog", "contraction", "it's", "it is", lexicon)
    _produces("a man took the dog", "function_deletion", "the", "", lexicon)
    _produces("a man took the dog", "function_insertion", "", "and", lexicon)
    _produces("a man took the dog", "function_substitution", "a", "the", lexicon)
    _produces("a nice dog", "resegmentation", "a nice", "an ice", lexicon)


def test_confusions_leave_what_they_should_alone(lexicon: Lexicon):
    by_kind = confusions(["a", "middle", "aged", "man"], lexicon)
    assert ("middle-aged",) not in {e.words for e in by_kind.get("compound", [])}
    # "st" is no common word, so "street" has no homophone to become.
    assert not confusions(["street"], lexicon)
    # Function words are not read across boundaries into other function words.
    assert all(not set(e.words) <= {"a", "an", "the"} for e in by_kind.get("resegmentation", []))


def test_spoken_numbers_parse():
    assert number_value(["twenty", "five"]) == (25, False)
    assert number_value(["twenty", "fifth"]) == (25, True)
    assert number_value(["three", "hundred", "twelve"]) == (312, False)
    assert number_value(["one", "thousand", "two", "hundred"]) == (1200, False)
    assert number_value(["five", "twenty"]) is None
    assert number_value(["nineteen", "ninety"]) is None
    assert number_value(["hundred"]) is None
    assert [digits_of(v, True) for v in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
    ]  # fmt: skip


SENTENCE = "a man took the dog from the u s to a nice street on may twenty five"


def test_nbest_is_five_hypotheses_best_first_with_their_edits(lexicon: Lexicon):
    reference = SENTENCE.split()
    seen_error = seen_diverse = False
    for k in range(200):
        hypotheses = nbest(reference, lexicon, random.Random(k))
        assert len(hypotheses) == modern.NBEST
        for words, edits in hypotheses:
            assert modern.apply(reference, edits) == words
            assert not any(a.conflicts(b) for a, b in itertools.combinations(edits, 2))
            assert (words == reference) == (not edits)
        seen_error |= hypotheses[0][0] != reference
        seen_diverse |= len({tuple(w) for w, _ in hypotheses}) > 1
    assert seen_error and seen_diverse


TEXTS = [f"A man number {i} took the dog to a nice street on May {i % 7 + 1}." for i in range(300)]


@pytest.fixture()
def small_sources(monkeypatch):
    def fake_sentences(name: str, split: str, max_words: int = 25) -> list[Sentence]:
        return [Sentence(f"{name}/{i}", t, name) for i, t in enumerate(TEXTS) if split_of(t) == split]

    monkeypatch.setattr(common, "sentences", fake_sentences)


def test_build_is_deterministic_split_clean_and_normalised(small_sources, lexicon: Lexicon):
    for split in ("train", "dev"):
        jobs = modern.plan(split, 40, seed=3)
        examples = [modern.work(lexicon, job) for job in jobs]
        again = [modern.work(lexicon, job) for job in modern.plan(split, 40, seed=3)]
        assert [e.to_dict() for e in examples] == [e.to_dict() for e in again]
        assert check_disjoint({split: examples}) == []
        for example in examples:
            assert split_of(example.metadata["source_text"]) == split
            assert example.reference == spoken_form(example.metadata["source_text"])
            assert re.fullmatch(r"[a-z0-9' ]+", example.reference)
            assert len(example.hypotheses) == modern.NBEST
            assert all(re.fullmatch(r"[a-z0-9' -]+", h) for h in example.hypotheses)
            assert example.dataset == f"modern/{example.metadata['source']}"
            assert len(example.metadata["confusions"]) == modern.NBEST
    train = modern.plan("train", 40, seed=3)
    built = {i: modern.work(lexicon, train[i]) for i in GOLDEN}
    assert {i: (e.id, e.reference, e.hypotheses[0]) for i, e in built.items()} == GOLDEN


GOLDEN = {
    3: (
        "modern-train-s3-000003",
        "a man number 78 took the dog to a nice street on may 2",
        "a man number 78 took the dog to an ice street on 2",
    ),
    13: (
        "modern-train-s3-000013",
        "a man number 119 took the dog to a nice street on may 1",
        "a man number 119 took the dog to an ice street on may 1",
    ),
}


def test_one_and_two_workers_build_the_same_file(small_sources, lexicon: Lexicon, tmp_path: Path):
    jobs = modern.plan("train", 30, seed=0)
    for workers in (1, 2):
        common.run_build(tmp_path / f"w{workers}.jsonl.gz", jobs, modern.work, lambda: lexicon, workers)
    one, two = (list(read_jsonl(tmp_path / f"w{w}.jsonl.gz")) for w in (1, 2))
    assert [e.to_dict() for e in one] == [e.to_dict() for e in two] and len(one) == 30
