"""Scoring targets after a shared prompt pass (`score_after_prompts`) gives what one plain forward pass
over each whole prompt + target gives: the gate's evidence and the rerank are exact, only cheaper."""

from __future__ import annotations

import pytest
import torch
from correct_fixtures import make_model_dir

from neko.correct import Corrector
from neko.correct.generation import score_after_prompts

PROMPT_LENGTHS = (5, 23, 11, 1)
TARGET_LENGTHS = ((1, 6, 2), (9,), (3, 1, 12, 4, 7), (2, 5))
"""Prompts and targets of different lengths in one batch, so that left padding of the prompts and right
padding of the targets both occur; one prompt of a single token, targets of a single token."""


@pytest.fixture(scope="module", params=["moe", "dense"])
def corrector(request, tmp_path_factory) -> Corrector:
    path = make_model_dir(tmp_path_factory.mktemp("shared") / "m", dense=request.param == "dense")
    return Corrector.from_pretrained(path, device="cpu")


def token_rows(corrector: Corrector, lengths, seed: int) -> list[list[int]]:
    """Random token rows, markers included (familiarity leaves them out)."""
    generator = torch.Generator().manual_seed(seed)
    vocab = len(corrector.tokenizer)
    return [torch.randint(0, vocab, (length,), generator=generator).tolist() for length in lengths]


@torch.inference_mode()
def plain_log_probs(model: torch.nn.Module, row: list[int]) -> torch.Tensor:
    """Log-probability of each token of `row` after the first, from one unpadded pass over it."""
    logits = model(input_ids=torch.tensor([row]), use_cache=False).logits[0, :-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(row[1:])[:, None]).squeeze(-1)


def plain_target_score(model: torch.nn.Module, prompt: list[int], target: list[int]) -> float:
    return plain_log_probs(model, prompt + target)[len(prompt) - 1 :].sum().item()


def plain_familiarity(model: torch.nn.Module, prompt: list[int], skip_ids: list[int]) -> float:
    counted = [
        s
        for s, token in zip(plain_log_probs(model, prompt).tolist(), prompt[1:], strict=True)
        if token not in skip_ids
    ]
    return sum(counted) / max(len(counted), 1)


@pytest.mark.parametrize("rows_per_pass", [1, 4, 64])
def test_scores_and_familiarity_equal_plain_full_passes(corrector, rows_per_pass):
    model, markers = corrector.model, corrector.tokenizer.all_special_ids
    prompts = token_rows(corrector, PROMPT_LENGTHS, seed=1)
    prompts[1][3:6] = markers[:3]  # markers left out of the familiarity
    targets = [token_rows(corrector, lengths, seed=10 + p) for p, lengths in enumerate(TARGET_LENGTHS)]
    found = score_after_prompts(
        model,
        prompts,
        targets,
        pad_id=corrector.pad_id,
        rows_per_pass=rows_per_pass,
        familiarity_skip_ids=markers,
    )
    for prompt, row, scores in zip(prompts, targets, found, strict=True):
        expected = [plain_target_score(model, prompt, target) for target in row]
        assert scores.targets == pytest.approx(expected, abs=1e-4)
        assert scores.familiarity == pytest.approx(plain_familiarity(model, prompt, markers), abs=1e-4)


def test_familiarity_only_when_asked_for(corrector):
    prompts = token_rows(corrector, (4, 7), seed=2)
    found = score_after_prompts(
        corrector.model, prompts, [[[5]], [[6, 7]]], pad_id=corrector.pad_id, rows_per_pass=2
    )
    assert [scores.familiarity for scores in found] == [None, None]
    assert found[1].targets == pytest.approx(
        [plain_target_score(corrector.model, prompts[1], [6, 7])], abs=1e-4
    )


def test_gate_evidence_equals_plain_scores(corrector):
    """The margins and familiarity the gate decides on, against plain passes over each candidate."""
    inputs = [
        ["the cat sat on the mat and the dog sat on the log", "the cat sad on the mat", "a cat"],
        ["she sells sea shells"],
        ["numbers 0 1 2 3", "numbers 0 1 2 3 4 5 6 7 8 9 and more words", "number"],
    ]
    corrections = corrector.correct(inputs, task="asr", batch_size=3, safety_valve=False, evidence=True)
    items = corrector._prepare(inputs, "asr", None)
    model, markers = corrector.model, corrector.tokenizer.all_special_ids
    for item, correction in zip(items, corrections, strict=True):
        evidence = correction.evidence
        per_token = [
            plain_target_score(model, item.prompt.ids, ids) / len(ids)
            for ids in (corrector._target_ids(item, text) for text in [evidence.output, *item.hypotheses])
        ]
        output, hypotheses = per_token[0], per_token[1:]
        assert evidence.margin == pytest.approx(output - hypotheses[0], abs=1e-4)
        assert evidence.rerank_margin == pytest.approx(max(hypotheses) - hypotheses[0], abs=1e-4)
        assert evidence.familiarity == pytest.approx(
            plain_familiarity(model, item.prompt.ids, markers), abs=1e-4
        )
