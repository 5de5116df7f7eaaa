"""Which hypothesis the N-best oracle picks is measured as the task is scored: character edits for CER
tasks, the closest of all references for multi-reference tasks (found by mutation testing of
oracles.py; the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.metrics import Scorer
from neko.evaluate.normalize import normalize_basic
from neko.evaluate.oracles import compositional_oracle_wer, nbest_oracle_outputs, task_oracle_outputs

SCORER = Scorer(errant=False)


def test_a_cer_task_picks_the_hypothesis_with_the_fewest_character_edits():
    # "Helo wrld": 2 characters, 2 words wrong; "Hello wxyzq": 5 characters, 1 word wrong.
    example = Example("o", "ocr", ["Helo wrld", "Hello wxyzq"], reference="Hello world")
    assert task_oracle_outputs([example], SCORER) == {"o": "Helo wrld"}
    as_words = nbest_oracle_outputs([example], lambda text: text)
    assert as_words == {"o": "Hello wxyzq"}


def test_a_multi_reference_task_picks_the_hypothesis_closest_to_any_reference():
    # "the cat sad": 1 edit from the main reference; "a dog ran": equal to the second reference.
    hypotheses = ["the cat sad", "a dog ran"]
    st = Example("s", "st", hypotheses, reference="the cat sat", extra_references=["a dog ran"])
    asr = Example("a", "asr", hypotheses, reference="the cat sat", extra_references=["a dog ran"])
    assert task_oracle_outputs([st, asr], SCORER) == {"s": "a dog ran", "a": "the cat sad"}
    assert nbest_oracle_outputs([st], normalize_basic) == {"s": "the cat sad"}  # main reference only


def test_the_compositional_oracle_of_references_without_words_is_undefined_like_every_error_rate():
    example = Example("e", "asr", ["hello"], reference="?!")  # normalises to no words
    assert math.isnan(compositional_oracle_wer([example], normalize_basic))


def test_oracle_errors_name_the_problem():
    with pytest.raises(NekoError, match="o_cp of no examples is undefined"):
        compositional_oracle_wer([], normalize_basic)
    with pytest.raises(NekoError, match="example 'x' has no reference; oracles need one"):
        nbest_oracle_outputs([Example("x", "asr", ["a"])], normalize_basic)
