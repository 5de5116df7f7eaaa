"""What `neko.moe.routing` promises beyond the rule itself (found by mutation testing of routing.py):
one hook per router however often guidance is applied, records that name their layer, padding left
out of the statistics, and one-line errors that say what is wrong."""

from __future__ import annotations

import pytest
import torch
import transformers
from moe_fixtures import TINY, tiny_moe

from neko.errors import NekoError
from neko.moe import ExpertAssignment, RoutingStats, apply_task_guidance, damex_loss, task_routing

ASSIGNMENT = ExpertAssignment({"asr": 2, "ocr": 0}, num_experts=4)
TOKENS = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(3))


def test_applying_guidance_again_replaces_the_hooks_instead_of_stacking_them():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    apply_task_guidance(model, ASSIGNMENT, "damex")  # damex routes plainly, as the stock model
    with task_routing(torch.tensor([0, 1])) as routing:
        logits = model(input_ids=TOKENS).logits
    assert [record.layer for record in routing.records] == [0, 1]  # one record per layer
    torch.testing.assert_close(logits, tiny_moe().train()(input_ids=TOKENS).logits)


def test_a_pass_without_task_ids_records_no_forced_expert():
    model = apply_task_guidance(tiny_moe().train(), ASSIGNMENT)
    with task_routing() as routing:
        model(input_ids=TOKENS)
    assert [record.forced for record in routing.records] == [None, None]
    assert float(damex_loss(routing.records)) == 0.0


def test_padding_is_left_out_of_the_routing_statistics():
    model = apply_task_guidance(tiny_moe().eval(), ASSIGNMENT)
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    stats = RoutingStats(["asr", "ocr"], num_layers=2, num_experts=4)
    with torch.no_grad(), task_routing(torch.tensor([0, 1]), attention_mask=mask, stats=stats, record=False):
        model(input_ids=TOKENS, attention_mask=mask)
    assert stats.tokens.tolist() == [[6, 6], [3, 3]]
    assert stats.counts.sum(-1).tolist() == [[12, 12], [6, 6]]  # top-2 of each real token


@pytest.mark.parametrize(
    ("make", "strategy", "message"),
    [
        (
            tiny_moe,
            "sparse",
            "unknown routing mode 'sparse'; expected one of task_guided, moe, damex, dense",
        ),
        (
            lambda: torch.nn.Linear(2, 2),
            "task_guided",
            "does not support model type None; supported: mixtral",
        ),
        (
            lambda: transformers.Qwen2MoeForCausalLM(
                transformers.Qwen2MoeConfig(**TINY, num_experts=4, mlp_only_layers=[0, 1])
            ),
            "task_guided",
            "no Qwen2MoeTopKRouter found in the qwen2_moe model: its MoE layers may be disabled",
        ),
    ],
    ids=["strategy", "not-a-transformers-model", "no-moe-layers"],
)
def test_guidance_errors_are_one_line_and_say_what_is_wrong(make, strategy, message):
    with pytest.raises(NekoError) as error:
        apply_task_guidance(make(), ASSIGNMENT, strategy)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_expert_map_for_another_expert_count_is_refused():
    with pytest.raises(NekoError, match="the expert map is for 3 experts but the model has 4"):
        apply_task_guidance(tiny_moe(), ExpertAssignment({"asr": 2}, num_experts=3))
