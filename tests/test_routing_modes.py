"""One vocabulary of routing modes from the training config to neko.json, and routers found by type."""

from __future__ import annotations

import pytest
import torch
from moe_fixtures import FAMILIES, tiny_moe

from neko.correct.model_dir import ModelInfo
from neko.errors import NekoError
from neko.moe import ExpertAssignment, RoutingMode, apply_task_guidance, remove_task_guidance
from neko.moe.routing import ROUTER_FAMILIES, find_routers, router_type
from neko.train.config import MODES

ASSIGNMENT = ExpertAssignment({"asr": 0, "ocr": 1}, num_experts=4)


def test_config_and_model_directory_share_the_modes():
    assert tuple(MODES) == tuple(RoutingMode)
    assert [str(mode) for mode in RoutingMode] == ["task_guided", "moe", "damex", "dense"]


def test_neko_json_keeps_the_modes_name_and_routes_by_it():
    info = ModelInfo.from_dict({"format": 1, "tasks": ["asr"], "strategy": "moe", "assignment": None})
    assert info.strategy is RoutingMode.MOE and info.to_dict()["strategy"] == "moe"
    routed = ModelInfo(tasks=["asr", "ocr"], assignment=ASSIGNMENT, strategy="damex")
    assert routed.routing_strategy is RoutingMode.DAMEX
    dense = ModelInfo(tasks=["asr", "ocr"], assignment=ASSIGNMENT, strategy="dense")
    assert dense.routing_strategy is RoutingMode.MOE
    assert info.routing_strategy is None  # no assignment: a dense model


@pytest.mark.parametrize("mode", ["moe", RoutingMode.DAMEX])
def test_apply_task_guidance_takes_a_mode_or_its_name(mode):
    model = apply_task_guidance(tiny_moe(), ASSIGNMENT, mode)
    assert model.neko_guidance.strategy is RoutingMode(mode)
    remove_task_guidance(model)


def test_unknown_and_dense_modes_are_one_line():
    with pytest.raises(NekoError, match="unknown routing mode 'top_2'; expected one of task_guided, moe"):
        apply_task_guidance(tiny_moe(), ASSIGNMENT, "top_2")
    with pytest.raises(NekoError, match="routing mode 'dense' has no experts to route"):
        apply_task_guidance(tiny_moe(), ASSIGNMENT, RoutingMode.DENSE)


def test_routers_are_found_by_type_in_every_supported_family():
    assert set(ROUTER_FAMILIES) == set(FAMILIES)
    for family in FAMILIES:
        routers = find_routers(tiny_moe(family))
        assert [layer for layer, _ in routers] == [0, 1]
        assert all(isinstance(router, router_type(family)) for _, router in routers)


def test_a_wrapped_router_subclass_is_still_a_router():
    model = tiny_moe()
    router_class = router_type("mixtral")
    wrapped = type("WrappedMixtralTopKRouter", (router_class,), {})
    for layer in model.model.layers:
        layer.mlp.gate.__class__ = wrapped
    assert [type(router) for _, router in find_routers(model)] == [wrapped, wrapped]


def test_a_model_without_routers_is_one_line():
    model = tiny_moe()
    for layer in model.model.layers:
        layer.mlp.gate = torch.nn.Identity()
    with pytest.raises(NekoError, match="no MixtralTopKRouter found in the mixtral model"):
        find_routers(model)
