"""Metrics, normalisers and oracles against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import jiwer
import pytest
import sacrebleu

from neko.data.jsonl import read_jsonl
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate import errant_score, gleu
from neko.evaluate.metrics import (
    Scorer,
    bleu,
    cer,
    chrf,
    edit_counts,
    format_score,
    relative_change,
    wer,
)
from neko.evaluate.normalize import (
    get_normalizer,
    normalize_basic,
    normalize_whitespace,
    spell_integer,
    spell_ordinal,
)
from neko.evaluate.oracles import compositional_oracle_counts, compositional_oracle_wer, nbest_oracle_outputs

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def corpora_dir() -> Path:
    return Path(
        os.environ.get("NEKO_CORPORA") or Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
    )


@pytest.fixture(scope="module")
def examples() -> dict[str, Example]:
    return {e.id: e for e in read_jsonl(FIXTURES / "data.jsonl")}


# -- normalisers ---------------------------------------------------------------------------------------


def test_spell_numbers():
    assert spell_integer(0) == "zero"
    assert spell_integer(15) == "fifteen"
    assert spell_integer(40) == "forty"
    assert spell_integer(1250) == "one thousand two hundred fifty"
    assert spell_integer(2_000_017) == "two million seventeen"
    assert spell_ordinal(1) == "first"
    assert spell_ordinal(12) == "twelfth"
    assert spell_ordinal(21) == "twenty first"
    assert spell_ordinal(40) == "fortieth"
    assert spell_ordinal(100) == "one hundredth"


def test_basic_normaliser():
    assert normalize_basic("Hello, World!  It's 3 o'clock.") == "hello world it's three o'clock"
    assert normalize_basic("The 21st of 1,250 dogs & 50% cats") == (
        "the twenty first of one thousand two hundred fifty dogs and fifty percent cats"
    )
    assert (
        normalize_basic("It cost $2.50, or 2.5 dollars")
        == "it cost two dollars fifty cents or two point five dollars"
    )
    assert normalize_basic("well-known 'quoted' rock’n’roll A/B") == "well known quoted rock'n'roll a b"
    assert normalize_whitespace("  A  b.\tC ") == "A b. C"
    with pytest.raises(NekoError, match="unknown normaliser 'bogus'"):
        get_normalizer("bogus")


def test_wer_and_normaliser_effects():
    # "I have 2 dogs." vs "i have two dogs": basic normaliser -> "i have two dogs" both: 0 errors.
    assert wer(["I have 2 dogs."], ["i have two dogs"]) == 0.0
    # Without normalising: I/i, 2/two, dogs./dogs are 3 substitutions of 4 words = 75%.
    assert wer(["I have 2 dogs."], ["i have two dogs"], normalizer="none") == 75.0
    # Corpus WER pools errors: (1 sub in 4 words) + (1 del in 2 words) = 2 / 6 = 33.33%.
    assert wer(["a b c d", "e f"], ["a x c d", "e"]) == pytest.approx(100 * 2 / 6)
    # The same as jiwer on already-normalised text.
    refs, hyps = ["the cat sat on the mat", "hello world"], ["the cat sat on mat", "hello big world"]
    assert wer(refs, hyps) == pytest.approx(100 * jiwer.wer(refs, hyps))


def test_whisper_normaliser():
    pytest.importorskip("transformers")
    # Whisper's normaliser writes numbers as digits: "two" -> "2", so both sides agree.
    assert wer(["I have 2 dogs."], ["i have two dogs"], normalizer="whisper") == 0.0
    assert get_normalizer("whisper")("Mr. Smith, twenty five!") == "mister smith 25"


def test_edit_counts():
    # substitution b->x: 1 of 3; deletion of f: 1 of 2; insertion of z: 1 of 1; equal: 0 of 2.
    assert edit_counts(["a b c", "e f", "g", "h i"], ["a x c", "e", "g z", "h i"]) == [
        (1, 3),
        (1, 2),
        (1, 1),
        (0, 2),
    ]
    # characters include the space: "ab c" (4) vs "abc": one deletion.
    assert edit_counts(["ab c"], ["abc"], unit="char") == [(1, 4)]


def test_cer_and_ocr_wer(examples):
    # "Hello world" (11 characters) vs "Helo w0rld": delete "l", substitute o->0: 2 / 11 = 18.18%.
    assert cer(["Hello world"], ["Helo w0rld"]) == pytest.approx(100 * 2 / 11)
    # Word level, case and punctuation kept: Helo/Hello and w0rld/world: 2 / 2 = 100%.
    assert wer(["Hello world"], ["Helo w0rld"], normalizer="none") == 100.0
    assert cer(["Hello world"], ["hello world"]) == pytest.approx(100 / 11)  # case counts for OCR
    ocr = examples["o1"]
    scorer = Scorer()
    assert scorer.metrics_for("ocr") == ["cer", "wer"]
    assert scorer.score("cer", [ocr], ["Helo w0rld"]) == pytest.approx(100 * 2 / 11)
    assert scorer.score("wer", [ocr], ["Helo w0rld"]) == 100.0


def test_relative_change():
    # WER 20 -> 10: (10 - 20) / 20 = -50%, a 50% relative reduction. BLEU 40 -> 50: +25%.
    assert relative_change(20.0, 10.0) == -50.0
    assert relative_change(40.0, 50.0) == 25.0
    assert relative_change(0.0, 5.0) is None
    assert relative_change(math.nan, 5.0) is None and relative_change(5.0, math.nan) is None


def test_error_rates_of_references_without_words_are_undefined_not_insertion_counts():
    # jiwer answers 2 (the inserted words) for ["", ""] vs ["a b", ""]: a count, which x100 would
    # print as a WER of 200. No reference word: no rate, shown as "n/a".
    assert math.isnan(wer(["", ""], ["a b", ""]))
    assert math.isnan(wer([""], [""]))
    assert math.isnan(cer([""], ["x"]))
    assert format_score(wer([""], ["a"])) == "n/a" and format_score(12.345) == "12.35"
    # one reference with words is enough: the insertions count against its words
    assert wer(["", "a b"], ["c", "a b"]) == 50.0


# -- oracles -------------------------------------------------------------------------------------------


def test_nbest_oracle(examples):
    asr = [examples[i] for i in ("a1", "a2", "a3")]
    chosen = nbest_oracle_outputs(asr, normalize_basic)
    # a1: ref "the cat sat on the mat"; hyp1 1 error (the->a), hyp2 0, hyp3 3 errors -> hyp2.
    assert chosen["a1"] == "the cat sat on the mat"
    # a2: ref "i have two dogs"; hyp1 1 error (to), hyp2 2 errors (eye, too) -> hyp1.
    assert chosen["a2"] == "i have to dogs"
    # a3: ref "hello world"; both hypotheses have 1 error -> the tie goes to the earlier one.
    assert chosen["a3"] == "hello word"
    # Corpus o_nb WER: (0 + 1 + 1) / (6 + 4 + 2) = 2 / 12.
    assert wer([e.reference for e in asr], [chosen[e.id] for e in asr]) == pytest.approx(100 * 2 / 12)
    # st: ref "a b c d f" (or "a b c d g"); hyp1 "a b c d e" 1 error, hyp2 exact -> hyp2.
    assert nbest_oracle_outputs([examples["s1"]], normalize_whitespace, all_references=True) == {
        "s1": "a b c d f"
    }


def test_compositional_oracle(examples):
    # a1: every reference word (the cat sat on the mat) occurs in some hypothesis: 0 of 6.
    assert compositional_oracle_counts(examples["a1"], normalize_basic) == (0, 6)
    # a2: "two" occurs in no hypothesis (to, too): 1 of 4.
    assert compositional_oracle_counts(examples["a2"], normalize_basic) == (1, 4)
    # a3: "hello" in hyp1, "world" in hyp2: 0 of 2, although each hypothesis alone has 1 error.
    assert compositional_oracle_counts(examples["a3"], normalize_basic) == (0, 2)
    # Corpus: 1 / 12 = 8.33%, below o_nb (2 / 12).
    asr = [examples[i] for i in ("a1", "a2", "a3")]
    assert compositional_oracle_wer(asr, normalize_basic) == pytest.approx(100 / 12)


# -- BLEU and chrF -------------------------------------------------------------------------------------


def test_bleu_by_hand_and_against_sacrebleu():
    # "a b c d e" vs "a b c d f": matches 4/5, 3/4, 2/3, 1/2; same length, BP = 1;
    # BLEU = (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 0.2 ** 0.25 = 0.66874 -> 66.874.
    value, signature = bleu(["a b c d e"], [["a b c d f"]])
    assert value == pytest.approx(100 * 0.2**0.25)
    assert signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    # A second reference equal to the hypothesis makes it perfect.
    assert bleu(["a b c d e"], [["a b c d f", "a b c d e"]])[0] == pytest.approx(100.0)
    hyps = ["el gato se sentó en la alfombra", "hola mundo"]
    refs = [["el gato se sentó en la estera", "un gato se sentó en la alfombra"], ["hola mundo"]]
    expected = sacrebleu.corpus_bleu(
        hyps, [[r[0] for r in refs], [r[1] if len(r) > 1 else None for r in refs]]
    )
    assert bleu(hyps, refs)[0] == pytest.approx(expected.score)
    expected_chrf = sacrebleu.corpus_chrf(
        hyps, [[r[0] for r in refs], [r[1] if len(r) > 1 else None for r in refs]]
    )
    value, signature = chrf(hyps, refs)
    assert value == pytest.approx(expected_chrf.score)
    assert "nc:6" in signature
    assert chrf(["hola mundo"], [["hola mundo"]])[0] == pytest.approx(100.0)


# -- GLEU ----------------------------------------------------------------------------------------------

SRC, HYP = "the cat sit on mat", "the cat sits on mat"
REF0, REF1 = "the cat sits on the mat", "the cat sat on the mat"


def test_gleu_sentence_statistics_by_hand():
    # Against REF0, S \ R keeps the source n-grams whose type is absent from REF0:
    # n=1: H∩R = the,cat,sits,on,mat = 5; S\R = {sit}, H∩(S\R) = 0 -> 5 / (5+1-1=5)
    # n=2: H∩R = the cat, cat sits, sits on = 3; S\R = {cat sit, sit on, on mat}, H∩ = {on mat} = 1 -> 2 / 4
    # n=3: H∩R = the cat sits, cat sits on = 2; H∩(S\R) = 0 -> 2 / 3
    # n=4: H∩R = the cat sits on = 1 -> 1 / 2;  c = 5, r = 6.
    assert gleu.sentence_stats(SRC, HYP, REF0) == [5, 6, 5, 5, 2, 4, 2, 3, 1, 2]
    # GLEU = exp(min(0, 1 - 6/5)) * (1 * 1/2 * 2/3 * 1/2) ** (1/4) = exp(-0.2) * (1/6) ** 0.25 = 0.523122
    g0 = gleu.gleu_from_stats(gleu.sentence_stats(SRC, HYP, REF0))
    assert g0 == pytest.approx(math.exp(-0.2) * (1 / 6) ** 0.25)
    # Against REF1: n=1: the,cat,on,mat = 4 / 5; n=2: H∩R = {the cat} = 1 minus H∩(S\R) = {on mat} = 1 -> 0;
    # n=3 and n=4: nothing in common -> 0. Unsmoothed corpus GLEU with a zero statistic is 0.
    assert gleu.sentence_stats(SRC, HYP, REF1) == [5, 6, 4, 5, 0, 4, 0, 3, 0, 2]
    assert gleu.gleu_from_stats(gleu.sentence_stats(SRC, HYP, REF1)) == 0.0
    # Sentence GLEU smooths zeros to 1: exp(-0.2) * (4/5 * 1/4 * 1/3 * 1/2) ** 0.25 = 0.349832, and
    # averages over the references: (0.523122 + 0.349832) / 2 = 0.436477.
    g1 = math.exp(-0.2) * (4 / 5 * 1 / 4 * 1 / 3 * 1 / 2) ** 0.25
    assert gleu.sentence_gleu(SRC, HYP, [REF0, REF1]) == pytest.approx((g0 + g1) / 2)


def test_gleu_corpus_sums_statistics():
    # Sentence 2 is a perfect copy: [4, 4, 4, 4, 3, 3, 2, 2, 1, 1]. Summed with sentence 1 against REF0:
    # c = 9, r = 10, precisions 9/9, 5/7, 4/5, 2/3 -> exp(1 - 10/9) * (5/7 * 4/5 * 2/3) ** 0.25 = 0.703012
    result = gleu.corpus_gleu([SRC, "a b c d"], [HYP, "a b c d"], [[REF0], ["a b c d"]])
    assert result.score == pytest.approx(math.exp(1 - 10 / 9) * (5 / 7 * 4 / 5 * 2 / 3) ** 0.25)
    assert result.std == 0.0  # one reference each: every iteration is the same
    with pytest.raises(NekoError, match="no reference"):
        gleu.corpus_gleu([SRC], [HYP], [[]])


def test_gleu_multi_reference_sampling():
    # Iteration j seeds the Mersenne Twister with j * 101 and draws int(random() * k), as Python 2's
    # randint(0, k - 1) did. Random(0).random() = 0.8444 -> int(0.8444 * 4) = 3; Random(101) -> 0.5812 -> 2.
    assert random.Random(0).random() == pytest.approx(0.8444218515250481)
    assert gleu.sample_reference_indices([4], 2)[:, 0].tolist() == [3, 2]
    # One sentence with two references scores 0.523122 (REF0) or 0 (REF1) per iteration; the mean over
    # 500 iterations is (iterations drawing REF0) / 500 * 0.523122.
    draws_ref0 = sum(int(random.Random(j * 101).random() * 2) == 0 for j in range(500))
    assert draws_ref0 == 242
    result = gleu.corpus_gleu([SRC], [HYP], [[REF0, REF1]])
    g0 = math.exp(-0.2) * (1 / 6) ** 0.25
    assert result.score == pytest.approx(242 / 500 * g0)
    assert result.iterations == 500


def test_gleu_jfleg_source_copy():
    """JFLEG dev, the source copied as the correction: the JFLEG leaderboard gives 38.21 GLEU."""
    jfleg = corpora_dir() / "jfleg" / "dev"
    if not (jfleg / "dev.src").exists():
        missing = f"JFLEG dev not found under {jfleg} (set NEKO_CORPORA)"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"{missing}: CI must check the published 38.21 anchor")
        pytest.skip(missing)
    source = (jfleg / "dev.src").read_text(encoding="utf-8").splitlines()
    refs = [(jfleg / f"dev.ref{k}").read_text(encoding="utf-8").splitlines() for k in range(4)]
    assert len(source) == 754 and all(len(r) == 754 for r in refs)
    result = gleu.corpus_gleu(source, source, [list(r) for r in zip(*refs, strict=True)])
    assert round(100 * result.score, 2) == 38.21
    assert 100 * result.score == pytest.approx(38.2146, abs=1e-3)


# -- ERRANT --------------------------------------------------------------------------------------------


def test_errant_reference_choice_by_hand():
    # Edits as errant_compare keys them: (start, end, correction). The hypothesis makes edits A and B.
    a, b, c = (1, 2, "is"), (3, 4, "sentence"), (0, 1, "That")
    hyp = {a: ["R:VERB:SVA"], b: ["R:NOUN:NUM"]}
    ref_x = {a: ["R:VERB:SVA"], c: ["R:DET"]}  # tp 1 (A), fp 1 (B), fn 1 (C): F0.5 = 0.5
    ref_y = {a: ["R:VERB:SVA"], b: ["R:NOUN:NUM"]}  # tp 2, fp 0, fn 0: F0.5 = 1
    result = errant_score.score_edits([hyp], [[ref_x, ref_y]])
    assert (result.tp, result.fp, result.fn, result.f05) == (2, 0, 0, 1.0)
    # A noop hypothesis against ref_x: tp 0, fp 0, fn 2 -> P = 1, R = 0, F0.5 = 0.
    noop = {(-1, -1, "-NONE-"): ["noop"]}
    result = errant_score.score_edits([noop], [[ref_x]])
    assert (result.tp, result.fp, result.fn, result.precision, result.recall, result.f05) == (
        0,
        0,
        2,
        1.0,
        0.0,
        0.0,
    )
    # Two sentences: totals add up. (2, 0, 0) + (1, 1, 1) -> P = 3/4, R = 3/4, F0.5 = 0.75.
    result = errant_score.score_edits([hyp, hyp], [[ref_y], [ref_x]])
    assert (result.tp, result.fp, result.fn, result.f05) == (3, 1, 1, 0.75)


def test_errant_f05_when_installed():
    if errant_score.unavailable_reason() is not None:
        pytest.skip("errant and a spaCy English model are not installed")
    # "This are a sentences ." -> the reference fixes "are" and "sentences"; the hypothesis only "are":
    # tp 1, fp 0, fn 1 -> P = 1, R = 0.5, F0.5 = 1.25 * 0.5 / (0.25 + 0.5) = 0.8333.
    result = errant_score.errant_f05(
        ["This are a sentences ."], ["This is a sentences ."], [["This is a sentence ."]]
    )
    assert (result.tp, result.fp, result.fn) == (1, 0, 1)
    assert result.f05 == pytest.approx(0.8333)


def test_errant_omitted_with_a_note(monkeypatch):
    monkeypatch.setattr(
        errant_score, "unavailable_reason", lambda: "the Python module 'errant' is not installed"
    )
    scorer = Scorer()
    assert scorer.metrics_for("tec") == ["gleu"]
    assert any("ERRANT F0.5 omitted" in note for note in scorer.notes)
    assert Scorer(errant=False).metrics_for("tec") == ["gleu"]
