"""The engines give the reference's outputs: copy-aware decoding against transformers' greedy search."""

from __future__ import annotations

import math

import pytest
import torch
from correct_fixtures import make_model_dir, random_inputs, script_outputs

from neko.correct import Corrector, decoding
from neko.correct.decoding import copy_generate
from neko.correct.drafts import DRAFT_TOKENS, PromptLookup, copy_sources
from neko.correct.generation import generate
from neko.data.schema import Example
from neko.errors import NekoError
from neko.progress import progress_bar


@pytest.fixture(scope="module")
def corrector(tmp_path_factory):
    path = make_model_dir(tmp_path_factory.mktemp("engines") / "m", max_new_tokens=16)
    # float64: the engines' different pass shapes round differently; in float32 a near-tie could flip
    corrector = Corrector.from_pretrained(path, device="cpu", dtype=torch.float64)
    corrector.model.set_experts_implementation("eager")  # grouped_mm has no float64
    return corrector


def end_early(model: torch.nn.Module, eos_id: int):
    """Make the model end its output where its hidden state says so (a fixed function of the state,
    so still one model for both engines): rows end at different steps."""

    def hook(module, args, logits):
        hidden = args[0]
        return logits + 1e3 * (hidden[..., :1] > 1.0) * torch.nn.functional.one_hot(
            torch.tensor(eos_id), logits.shape[-1]
        ).to(logits.dtype)

    return model.get_output_embeddings().register_forward_hook(hook)


def outputs(corrector, engine, examples, batch_size):
    corrector.engine = engine
    corrections = corrector.correct(examples, batch_size=batch_size, safety_valve=False, gate=False)
    return [c.output for c in corrections]


@pytest.mark.parametrize(
    ("batch_size", "ends_early", "hole_slack"),
    [(1, False, 0), (1, True, 0), (3, False, 0), (16, False, 0), (16, True, 0), (16, False, 32)],
)
def test_copy_engine_writes_what_greedy_search_writes(
    corrector, batch_size, ends_early, hole_slack, monkeypatch
):
    """Rejected drafts leave holes in the cache, squeezed out (at once with a slack of 0) or not."""
    monkeypatch.setattr(decoding, "HOLE_SLACK", hole_slack)
    examples = random_inputs(6 if batch_size == 1 else 16, seed=batch_size)
    handle = end_early(corrector.model, corrector.eos_id) if ends_early else None
    try:
        reference = outputs(corrector, "transformers", examples, batch_size)
        copied = outputs(corrector, "copy", examples, batch_size)
    finally:
        corrector.engine = "copy"
        if handle is not None:
            handle.remove()
    assert copied == reference
    if ends_early:
        assert len({len(o) for o in reference}) >= 3  # rows did end at different steps


def test_a_copying_output_takes_few_passes(corrector):
    """Where the output copies the 1-best, drafts are accepted: far fewer passes than tokens."""
    best = "the quick brown fox jumps over the lazy dog"
    ids = corrector.tokenizer.encode(best, add_special_tokens=False)
    undo = script_outputs(corrector.model, [*ids, corrector.eos_id])
    passes = []
    handle = corrector.model.base_model.register_forward_hook(lambda *args: passes.append(1))
    try:
        [correction] = corrector.correct(
            [Example("x", "asr", [best, "the quick brown box"])], max_new_tokens=40, gate=False
        )
    finally:
        handle.remove()
        undo()
    assert correction.output == best
    # the prompt pass, then each pass accepts a whole draft and the model's next token
    assert len(passes) == 1 + math.ceil((len(ids) + 1) / (DRAFT_TOKENS + 1)) < len(ids) / 2


def test_length_limit_and_unfinished_rows_match(corrector):
    examples = random_inputs(8, seed=7)
    prompts = [item.prompt.ids for item in corrector._prepare(examples, None, None)]
    common = dict(pad_id=corrector.pad_id, eos_id=corrector.eos_id, max_new_tokens=5)
    reference = generate(corrector.model, prompts, **common)
    copied = copy_generate(corrector.model, prompts, separators=corrector._separators, **common)
    assert copied == reference
    assert all(len(g.ids) <= 5 for g in copied)


def test_prompt_lookup_drafts_the_hypothesis_that_continues():
    sources = copy_sources([90, 1, 2, 3, 91, 1, 4, 5, 92], separators=[90, 91, 92], eos_id=0)
    assert sources == [[1, 2, 3, 0], [1, 4, 5, 0]]
    lookup = PromptLookup(sources)
    assert lookup.draft([], 8) == [1, 2, 3, 0]  # the start of the best hypothesis
    assert lookup.draft([1, 4], 8) == [5, 0]  # the hypothesis whose tokens the output follows
    assert lookup.draft([7, 8, 7], 5) == [8, 7, 8, 7, 8]  # nothing in the sources: the output's loop
    assert lookup.draft([7, 8, 9, 8, 9], 3) == [8, 9, 8]
    assert lookup.draft([7], 8) == [] and lookup.draft([1], 0) == []


def test_unknown_engine_is_one_line(tmp_path):
    with pytest.raises(
        NekoError, match="unknown engine 'fast'; expected one of auto, copy, transformers, onnx"
    ):
        Corrector.from_pretrained(make_model_dir(tmp_path / "m"), device="cpu", engine="fast")


def test_progress_is_reported_per_batch(corrector):
    done = []
    corrector.progress = done.append
    try:
        corrector.correct(random_inputs(10, seed=3), batch_size=4, gate=False)
    finally:
        corrector.progress = None
    assert done == [4, 4, 2]


def test_no_progress_bar_off_a_terminal_or_when_quiet():
    with progress_bar("x", 3) as advance:  # pytest captures standard error: not a terminal
        assert advance is None
    with progress_bar("x", 3, quiet=True) as advance:
        assert advance is None
