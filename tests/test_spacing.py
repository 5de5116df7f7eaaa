"""An output in its input's tokenization (`neko.correct.spacing`): spaced punctuation and split
clitics, detected from the input and given to the tokens the model wrote."""

import pytest

from neko.correct.spacing import Spacing, match_spacing, match_spacing_start

TOKENIZED = "So I think we ca n't live if old people ( the olders ) did not developped it ."


@pytest.mark.parametrize(
    ("text", "spacing"),
    [
        (TOKENIZED, Spacing(spaced_punctuation=True, split_clitics=True)),
        ("For not use car .", Spacing(spaced_punctuation=True)),
        ("I do n't know", Spacing(split_clitics=True)),
        ("Hello, world. I don't know.", Spacing()),
        ("the cat sat on the mat", Spacing()),  # a recognizer's output: nothing to go by
        ("Mr. Smith arrived , and we left .", Spacing(spaced_punctuation=True)),  # the majority wins
        ("A man . on a bike, riding fast.", Spacing()),  # OCR noise: one stray mark is no convention
    ],
)
def test_the_convention_is_read_from_the_input(text, spacing):
    assert Spacing.of(text) == spacing


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "So I think we can't live if old people (the elders) did not develop it.",
            "So I think we ca n't live if old people ( the elders ) did not develop it .",
        ),
        ("He said \"stop.\" It's John's car, etc.", "He said \" stop . \" It 's John 's car , etc ."),
        ("Wait... what?!", "Wait ... what ?!"),
    ],
)
def test_an_output_takes_a_tokenized_inputs_convention(output, expected):
    assert match_spacing(output, TOKENIZED) == expected


def test_tokens_the_input_has_are_kept_as_they_are():
    source = "They bought milk , eggs , etc. and went home ."
    assert match_spacing("They bought milk, eggs, etc. and went home.", source) == source


def test_an_untokenized_input_leaves_the_output_alone():
    output = "So I don't know (really)."
    assert match_spacing(output, "so i dont know really") == output
    assert match_spacing(output, "So I don't know, really.") == output


def test_the_start_of_an_output_keeps_only_what_is_final():
    """The last token of an unfinished output may be the start of a word that is still to be split
    ("don" of "don't" -> "do n't"): it is left out, so the start begins every finished output."""
    finished = match_spacing("So I don't know.", TOKENIZED)
    for cut in range(len("So I don't know.")):
        start = match_spacing_start("So I don't know."[:cut].strip(), TOKENIZED)
        assert finished.startswith(start)
    assert match_spacing_start("the cat s", "the cat sat") == "the cat s"
