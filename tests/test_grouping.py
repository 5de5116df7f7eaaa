"""Regrouping examples for tables."""

import pytest

from neko.data.grouping import group_examples
from neko.data.schema import Example
from neko.errors import NekoError

EXAMPLES = [
    Example("a", "asr", ["x"], "x", dataset="captions/flite-slt/noise", metadata={"zero_shot": False}),
    Example("b", "asr", ["y"], "y", dataset="bible/festival-slt-hts/clean", metadata={"zero_shot": True}),
    Example("c", "asr", ["z"], "z", dataset="captions/flite-awb/clean"),
]


def test_group_by_dataset_prefix_and_metadata():
    assert [e.dataset for e in group_examples(EXAMPLES, "dataset:1")] == ["captions", "bible", "captions"]
    assert [e.dataset for e in group_examples(EXAMPLES, "dataset:2")][1] == "bible/festival-slt-hts"
    grouped = group_examples(EXAMPLES, "metadata:zero_shot")
    assert [e.dataset for e in grouped] == ["zero_shot=False", "zero_shot=True", "zero_shot=-"]
    assert group_examples(EXAMPLES, "dataset") == EXAMPLES
    assert EXAMPLES[0].dataset == "captions/flite-slt/noise"  # the inputs are left as they were


@pytest.mark.parametrize("spec", ["voice", "dataset:0", "dataset:x", "metadata:"])
def test_bad_group_by_is_a_one_line_error(spec):
    with pytest.raises(NekoError, match="--group-by"):
        group_examples(EXAMPLES, spec)
