"""The core behaviours, each checked by what it does rather than by the lines that do it, so that a
one-line break of any of them turns the suite red:

- a resumed run trains only the steps its checkpoint lacks;
- a corpus build is a function of its seed (golden outputs; 1 and 2 workers write the same bytes);
- task-guided training sends each task's tokens to its own expert, and vanilla MoE training does not;
- `Corrector.correct(num_beams=4)` returns the beam-search result, not the greedy one;
- gradient checkpointing recomputes the MoE layers in backward, routed exactly as in forward.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import TASKS, Stop, counted_optimizer_steps, expert_calls, write_config
from transformers import GenerationConfig
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct import Corrector
from neko.data.schema import Example
from neko.moe import RoutingStats, task_routing
from neko.tasks import get_task
from neko.train.config import load_config
from neko.train.loop import train
from neko.train.metrics import read_metrics

# --- resume ------------------------------------------------------------------------------------------


def test_a_resumed_run_trains_only_the_steps_after_its_checkpoint(tmp_path):
    steps = {"optim__max_steps": 30, "run__save_every": 10}
    config = load_config(write_config(tmp_path / "stopped", **steps))
    with pytest.raises(Stop), counted_optimizer_steps(stop_after=25):
        train(config)  # stopped at step 25; the latest checkpoint holds step 20
    with counted_optimizer_steps() as resumed_steps:
        resumed = train(config, resume=True)
    assert resumed_steps[0] == 30 - 20
    assert [m["step"] for m in read_metrics(tmp_path / "stopped" / "run") if "loss" in m] == list(
        range(1, 31)
    )

    with counted_optimizer_steps() as whole_steps:
        whole = train(load_config(write_config(tmp_path / "whole", **steps)))
    assert whole_steps[0] == 30
    resumed_weights, whole_weights = (
        load_file(resumed / "model.safetensors"),
        load_file(whole / "model.safetensors"),
    )
    assert resumed_weights.keys() == whole_weights.keys()
    for name, tensor in whole_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, msg=name)


# --- builder determinism ---------------------------------------------------------------------------

NOUNS = ["dog", "man", "woman", "child", "cat", "bird", "girl", "boy"]
PLACES = ["park", "river", "house", "market", "garden", "station"]


def _pool(source: str) -> tuple:
    """A fixed stand-in for a text source: 48 sentences, most of them in the train split."""
    from neko.data.sources import Sentence

    return tuple(
        Sentence(
            f"{source}-{i}",
            f"The {NOUNS[i % 8]} is walking to the {PLACES[i % 6]} with {i % 5 + 2} friends in {source}.",
            source,
        )
        for i in range(48)
    )


def _build_tec(out: Path, seed: int, workers: int) -> list[Example]:
    from neko.data.jsonl import read_jsonl

    _register_commands()
    args = ["data", "build", "tec", "--split", "train", "--count", "8", "--seed", str(seed)]
    result = CliRunner().invoke(app, [*args, "--workers", str(workers), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return list(read_jsonl(out))


TEC_SEED_0 = [
    # (id, hypothesis, reference) of `neko data build tec --split train --count 8 --seed 0` over _pool
    (
        "tec-train-s0-000000",
        "The woman is walking too the house with 3 friends in captions.",
        "The woman is walking to the house with 3 friends in captions.",
    ),
    (
        "tec-train-s0-000001",
        "The man is walking to the, station with 4 friends in bible.",
        "The man is walking to the station with 4 friends in bible.",
    ),
    (
        "tec-train-s0-000002",
        "The bird is walked to the market with 3 friends in wordnet.",
        "The bird is walking to the market with 3 friends in wordnet.",
    ),
    (
        "tec-train-s0-000003",
        "The man is walking to the river with 2 friends in captions.",
        "The man is walking to the river with 2 friends in captions.",
    ),
    (
        "tec-train-s0-000004",
        "The girl is walking of the garden with 3 friends in handbook.",
        "The girl is walking to the garden with 3 friends in handbook.",
    ),
    (
        "tec-train-s0-000005",
        "The child is walking to the market with 5 friends in captions.",
        "The child is walking to the market with 5 friends in captions.",
    ),
    (
        "tec-train-s0-000006",
        "The girl were walked to the house with 5 friends to bible.",
        "The girl is walking to the house with 5 friends in bible.",
    ),
    (
        "tec-train-s0-000007",
        "The bird was walking to the sration with 2 friends in wordnet.",
        "The bird is walking to the station with 2 friends in wordnet.",
    ),
]


def test_a_build_is_a_function_of_its_seed(tmp_path, monkeypatch):
    monkeypatch.setattr("neko.data.sources.load_source", _pool)
    one = _build_tec(tmp_path / "one.jsonl", seed=0, workers=1)
    _build_tec(tmp_path / "two.jsonl", seed=0, workers=2)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert [(e.id, e.hypotheses[0], e.reference) for e in one] == TEC_SEED_0
    other = _build_tec(tmp_path / "other.jsonl", seed=1, workers=1)
    assert [e.hypotheses for e in other] != [e.hypotheses for e in one]


# --- task guidance -----------------------------------------------------------------------------------


def _own_expert_share(run_dir: Path, assignment: dict[str, int]) -> dict[str, list[float]]:
    """Per task, the share of its routing slots that went to its own expert, for each logged step
    whose batches held the task."""
    loads = [m["expert_load"] for m in read_metrics(run_dir) if "expert_load" in m]
    shares = {task: [load[task][e] for load in loads if task in load] for task, e in assignment.items()}
    assert all(shares.values()), f"a task never trained: {shares}"
    return shares


def _training_mode_routing(model_dir: Path) -> RoutingStats:
    """The routes each task's tokens take in the saved model loaded by `Corrector`, in training mode."""
    corrector = Corrector.from_pretrained(model_dir, device="cpu")
    assignment = corrector.info.assignment
    rows = [
        corrector.tokenizer.encode(get_task(task).render_prompt(["the cat sat on the mat"]))
        for task in assignment.tasks
    ]
    input_ids = torch.tensor(rows)
    task_ids = torch.tensor([assignment.task_id(task) for task in assignment.tasks])
    stats = RoutingStats(assignment.tasks, num_layers=2, num_experts=assignment.num_experts)
    corrector.model.train()
    with torch.no_grad(), task_routing(task_ids, stats=stats, record=False):
        corrector.model(input_ids=input_ids)
    return stats


@pytest.fixture(scope="module")
def guided_and_vanilla(tmp_path_factory) -> dict[str, Path]:
    """Model directories of a short task-guided run and of the same run in vanilla `moe` mode."""
    root = tmp_path_factory.mktemp("guidance")
    return {
        mode: train(load_config(write_config(root / mode, mode=mode, optim__max_steps=6)))
        for mode in ("task_guided", "moe")
    }


def test_task_guided_training_sends_each_tasks_tokens_to_its_own_expert(guided_and_vanilla):
    model_dir = guided_and_vanilla["task_guided"]
    info = json.loads((model_dir / "neko.json").read_text())
    assert info["strategy"] == "task_guided"
    assignment = info["assignment"]["task_to_expert"]
    assert sorted(assignment) == sorted(TASKS)
    # In training, every token of task T uses f(T) in one of its two slots: exactly half of the slots.
    for task, shares in _own_expert_share(model_dir.parent, assignment).items():
        assert shares == [0.5] * len(shares), task
    # The saved model, loaded by the Corrector and put in training mode, routes task-guided again.
    stats = _training_mode_routing(model_dir)
    for i, task in enumerate(stats.tasks):
        expert = assignment[task]
        assert (stats.tokens[i] > 0).all()
        assert torch.equal(stats.counts[i, :, expert], stats.tokens[i]), task


def test_vanilla_moe_training_does_not_send_tasks_to_their_experts(guided_and_vanilla):
    model_dir = guided_and_vanilla["moe"]
    assignment = json.loads((model_dir / "neko.json").read_text())["assignment"]["task_to_expert"]
    shares = _own_expert_share(model_dir.parent, assignment)
    mean_share = {task: sum(values) / len(values) for task, values in shares.items()}
    assert all(share < 0.45 for share in mean_share.values()), mean_share
    stats = _training_mode_routing(model_dir)
    own = torch.stack([stats.counts[i, :, assignment[task]] for i, task in enumerate(stats.tasks)])
    assert (own < stats.tokens).any()


# --- beam search ---------------------------------------------------------------------------------------


def _reference_generation(corrector: Corrector, hypotheses: list[str], num_beams: int) -> str:
    """What transformers' own `generate` makes of the prompt, decoded as the corrector decodes."""
    tokenizer = corrector.tokenizer
    prompt = tokenizer.encode(get_task("asr").render_prompt(hypotheses), add_special_tokens=False)
    config = GenerationConfig(
        max_new_tokens=8,
        do_sample=False,
        num_beams=num_beams,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=corrector.eos_id,
    )
    with torch.no_grad():
        output = corrector.model.generate(input_ids=torch.tensor([prompt]), generation_config=config)
    new = output[0, len(prompt) :].tolist()
    new = new[: new.index(corrector.eos_id)] if corrector.eos_id in new else new
    text = tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return text.strip()


def test_correct_with_beams_returns_the_beam_search_result(model_path):
    corrector = Corrector.from_pretrained(model_path, device="cpu")
    hypotheses = ["the cat sat on the mat", "the cat sad on the mat"]
    beam, greedy = (_reference_generation(corrector, hypotheses, beams) for beams in (4, 1))
    assert beam != greedy  # the random model is one where beam search finds another continuation
    for beams, expected in ((4, beam), (1, greedy)):
        [correction] = corrector.correct(
            [hypotheses], task="asr", num_beams=beams, max_new_tokens=8, safety_valve=False, gate=False
        )
        assert correction.output == expected, beams


# --- gradient checkpointing ------------------------------------------------------------------------------


def _calls_per_module(tmp_path: Path, checkpointing: bool) -> dict[int, list[torch.Tensor]]:
    config = write_config(tmp_path, optim__max_steps=2, run__gradient_checkpointing=checkpointing)
    with expert_calls() as calls:
        train(load_config(config))
    per_module: dict[int, list[torch.Tensor]] = {}
    for module, indices in calls:
        per_module.setdefault(module, []).append(indices)
    return per_module


def test_gradient_checkpointing_recomputes_each_moe_layer_with_the_same_routes(tmp_path):
    plain = _calls_per_module(tmp_path / "plain", checkpointing=False)
    assert [len(calls) for calls in plain.values()] == [2, 2]  # 2 layers, one call per step
    checkpointed = _calls_per_module(tmp_path / "checkpointed", checkpointing=True)
    # per step and layer: the forward pass, then its recomputation in backward
    assert [len(calls) for calls in checkpointed.values()] == [4, 4]
    for calls in checkpointed.values():
        for forward, recompute in (calls[0:2], calls[2:4]):
            assert torch.equal(forward, recompute)  # the task-guided routes, replayed
