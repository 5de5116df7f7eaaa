"""The task-guided routing rule, its side channel, losses, statistics, and apply/strip."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from moe_fixtures import FAMILIES, tiny_moe

from neko.errors import NekoError
from neko.moe import (
    ExpertAssignment,
    RoutingStats,
    apply_task_guidance,
    damex_loss,
    enable_gradient_checkpointing,
    load_balancing_loss,
    remove_task_guidance,
    task_routing,
)
from neko.moe.context import current_routing

TASKS = ["asr", "ocr"]
ASSIGNMENT = ExpertAssignment({"asr": 2, "ocr": 0}, num_experts=4)


def batch(rows: int = 2, length: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (rows, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_training_token_goes_to_task_expert_and_gates_best_other(family):
    model = apply_task_guidance(tiny_moe(family).train(), ASSIGNMENT)
    task_ids = torch.tensor([0, 1])
    with task_routing(task_ids) as routing:
        model(input_ids=batch())
    assert len(routing.records) == 2
    for record in routing.records:
        forced = record.forced
        assert forced.tolist() == [2] * 7 + [0] * 7
        assert torch.equal(record.selected[:, 0], forced)
        probs = torch.softmax(record.router_logits.float(), dim=-1)
        others = probs.scatter(1, forced[:, None], -1.0)
        assert torch.equal(record.selected[:, 1], others.argmax(dim=-1))


def test_weights_are_renormalised_gate_probabilities():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    captured = {}
    router = model.model.layers[0].mlp.gate
    router.register_forward_hook(lambda module, args, output: captured.update(output=output))
    with task_routing(torch.tensor([1, 1])):
        model(input_ids=batch())
    logits, weights, indices = captured["output"]
    probs = torch.softmax(logits.float(), dim=-1).gather(1, indices)
    torch.testing.assert_close(weights, probs / probs.sum(-1, keepdim=True))
    assert (indices[:, 0] == 0).all()


def test_inference_routing_ignores_task_ids_and_matches_stock_model():
    stock = tiny_moe().eval()
    guided = apply_task_guidance(tiny_moe().eval(), ASSIGNMENT)
    inputs = batch()
    expected = stock(input_ids=inputs).logits
    for task_ids in (torch.tensor([0, 1]), torch.tensor([1, 0]), None):
        with task_routing(task_ids):
            torch.testing.assert_close(guided(input_ids=inputs).logits, expected)


def test_mixed_batch_and_per_token_ids_route_each_token_by_its_own_task():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    per_token = torch.tensor([[0, 0, 0, 1, 1, 1, -1], [1, 1, 1, 1, 0, 0, 0]])
    with task_routing(per_token) as routing:
        model(input_ids=batch())
    expected = torch.tensor([2, 2, 2, 0, 0, 0, -1, 0, 0, 0, 0, 2, 2, 2])
    record = routing.records[1]
    assert torch.equal(record.forced, expected)
    has_task = expected >= 0
    assert torch.equal(record.selected[has_task, 0], expected[has_task])
    # The token without a task gets the gate's plain top-2.
    plain = torch.topk(record.router_logits[6], 2).indices
    assert set(record.selected[6].tolist()) == set(plain.tolist())


def test_gradients_reach_router_and_both_selected_experts():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    with task_routing(torch.tensor([0])) as routing:
        loss = model(input_ids=batch(rows=1, length=2), labels=batch(rows=1, length=2, seed=3)).loss
    # Only the first token is scored (it predicts the second): its two experts, and only those, learn.
    loss.backward()
    for layer, record in zip(model.model.layers, routing.records, strict=True):
        assert layer.mlp.gate.weight.grad.abs().sum() > 0
        used = set(record.selected[0].tolist())
        assert 2 in used
        grads = layer.mlp.experts.gate_up_proj.grad.abs().sum(dim=(1, 2))
        assert {e for e in range(4) if grads[e] > 0} == used


def test_load_balancing_loss_counts_the_forced_routes():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    with task_routing(torch.tensor([0, 0])) as routing:
        model(input_ids=batch())
    record = routing.records[0]
    probs = torch.softmax(record.router_logits.float(), dim=-1)
    share = torch.nn.functional.one_hot(record.selected, 4).float().sum(1).sum(0) / record.selected.numel()
    assert share[2] == pytest.approx(0.5)  # every token sends one of its two slots to f(asr) = 2
    expected = 4 * torch.sum(share * probs.mean(0))
    torch.testing.assert_close(load_balancing_loss(routing.records[:1], 4), expected)


def test_load_balancing_loss_leaves_padding_out():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4])
    with task_routing(torch.tensor([0, 1]), attention_mask=mask) as masked:
        model(input_ids=batch())
    record = masked.records[0]
    keep = mask.reshape(-1).bool()
    probs = torch.softmax(record.router_logits[keep].float(), dim=-1)
    share = torch.nn.functional.one_hot(record.selected[keep], 4).float().sum((0, 1)) / (2 * keep.sum())
    torch.testing.assert_close(load_balancing_loss([record], 4), 4 * torch.sum(share * probs.mean(0)))


def test_damex_routes_plainly_and_its_loss_pulls_towards_the_task_expert():
    stock = tiny_moe().train()
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT, strategy="damex")
    inputs = batch()
    with task_routing(torch.tensor([0, 1])) as routing:
        logits = model(input_ids=inputs).logits
    torch.testing.assert_close(logits, stock(input_ids=inputs).logits)
    record = routing.records[0]
    expected = torch.nn.functional.cross_entropy(record.router_logits.float(), record.forced)
    torch.testing.assert_close(damex_loss(routing.records[:1]), expected)


def test_gradient_checkpointing_replays_the_task_ids_on_recompute():
    def gradients(checkpointing: bool) -> torch.Tensor:
        model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
        if checkpointing:
            enable_gradient_checkpointing(model)
        with task_routing(torch.tensor([0, 1])) as routing:
            loss = model(input_ids=batch(), labels=batch(seed=2)).loss
        records = len(routing.records)
        loss.backward()  # outside the block, as a training loop may do
        assert len(routing.records) == records  # the recompute records nothing twice
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    torch.testing.assert_close(gradients(True), gradients(False))


def test_routing_context_does_not_leak_into_later_calls():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    stock = tiny_moe().train()
    with task_routing(torch.tensor([0, 1])):
        pass
    assert current_routing() is None
    torch.testing.assert_close(model(input_ids=batch()).logits, stock(input_ids=batch()).logits)
    with pytest.raises(RuntimeError), task_routing(torch.tensor([0, 1])):
        raise RuntimeError("a failing step")
    assert current_routing() is None


def test_wrong_number_of_task_ids_is_reported():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    with (
        pytest.raises(ValueError, match="task routing got ids for 3 tokens"),
        task_routing(torch.tensor([[0, 1, 0]])),
    ):
        model(input_ids=batch())


def test_routing_statistics_count_each_tasks_tokens_per_layer_and_expert():
    model = apply_task_guidance(tiny_moe().eval(), ASSIGNMENT)
    stats = RoutingStats(TASKS, num_layers=2, num_experts=4)
    with torch.no_grad(), task_routing(torch.tensor([0, 1]), stats=stats, record=False):
        model(input_ids=batch())
    data = stats.to_dict()
    assert data["tasks"] == TASKS and data["num_layers"] == 2 and data["num_experts"] == 4
    counts = torch.tensor(data["counts"])
    assert counts.shape == (2, 2, 4)
    assert (counts.sum(-1) == 7 * 2).all()  # 7 tokens per task, 2 experts each
    probs = torch.tensor(data["mean_gate_prob"], dtype=torch.float64)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, dtype=torch.float64))


def test_strip_restores_stock_behaviour_and_names():
    stock = tiny_moe().train()
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    remove_task_guidance(model)
    assert not hasattr(model, "neko_guidance")
    with task_routing(torch.tensor([0, 1])) as routing:
        torch.testing.assert_close(model(input_ids=batch()).logits, stock(input_ids=batch()).logits)
    assert routing.records == []
    assert list(model.state_dict()) == list(stock.state_dict())


def test_saved_model_loads_in_plain_transformers_with_identical_logits(tmp_path):
    model = apply_task_guidance(tiny_moe().eval(), ASSIGNMENT)
    model.save_pretrained(tmp_path)
    inputs = batch()
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        torch.save(model(input_ids=inputs).logits, tmp_path / "expected.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "torch.set_num_threads(1)  # as in this test process: the same summation order\n"
        f"path = {str(tmp_path)!r}\n"
        "model = AutoModelForCausalLM.from_pretrained(path).eval()\n"
        "with torch.no_grad():\n"
        "    logits = model(input_ids=torch.load(path + '/inputs.pt')).logits\n"
        "assert 'neko' not in sys.modules\n"
        "torch.testing.assert_close(logits, torch.load(path + '/expected.pt'), rtol=0, atol=0)\n"
        "print('identical')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "identical" in result.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ExpertAssignment.random(["asr", "st", "ocr"], 2),
            "3 tasks (asr, st, ocr) but only 2 experts",
        ),
        (
            lambda: ExpertAssignment({"asr": 0, "nope": 1}, 4),
            "unknown task 'nope'; known tasks: asr, st, mt, ocr, tec",
        ),
        (
            lambda: ExpertAssignment({"asr": 1, "ocr": 1}, 4),
            "tasks 'asr' and 'ocr' are both mapped to expert 1",
        ),
        (lambda: ExpertAssignment({"asr": 4}, 4), "task 'asr' mapped to expert 4, outside 0..3"),
        (lambda: ExpertAssignment.from_config(["asr", "ocr"], 4, {"asr": 0}), "task 'ocr' has no expert"),
        (lambda: ExpertAssignment.random(["asr", "asr"], 4), "names a task twice"),
    ],
)
def test_bad_mappings_give_one_line_errors(make, message):
    with pytest.raises(NekoError, match=re.escape(message)) as error:
        make()
    assert "\n" not in str(error.value)


def test_random_assignment_is_seeded_and_distinct():
    first = ExpertAssignment.random(["asr", "st", "ocr", "tec"], 8, seed=3)
    assert first == ExpertAssignment.random(["asr", "st", "ocr", "tec"], 8, seed=3)
    assert len(set(first.task_to_expert.values())) == 4
    assert ExpertAssignment(**first.to_dict()) == first


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import LlamaConfig, LlamaForCausalLM

    dense = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(NekoError, match="does not support model type 'llama'; supported: mixtral, qwen2_moe"):
        apply_task_guidance(dense, ASSIGNMENT)
