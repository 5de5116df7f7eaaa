"""Task-guided routing for Mixtral-family MoE models in transformers 5.x.

The rule (our reading of the reference system's task-guided MoE):

    In training mode, a token of an example of task T is sent to two experts: f(T), the expert that
    task T owns, and the gate's top-1 among the *other* experts. Their weights are the gate's softmax
    probabilities of those two experts, renormalised to sum to 1. Tokens with no task (padding,
    unknown task) and every token at inference get the gate's plain top-k (top-2); the task is not
    assumed at inference.

Because the forced expert's weight is the gate's own probability, the router is trained to give f(T)
a high probability on T's tokens, which is what lets the plain top-2 find it at inference. With
top-k > 2, f(T) is joined by the gate's top-(k-1) among the others.

Implementation: the rule runs in a forward hook on each router module (`MixtralTopKRouter` and its
Qwen2-MoE, Qwen3-MoE and OLMoE twins, found by type, so wrapped subclasses count too). The hook
reuses the router's logits and only rewrites its (weights, indices) output, so parameters keep their
stock names and shapes: checkpoints load and save unchanged, and a stripped model is a plain
transformers model. Task ids come from `neko.moe.context.task_routing`.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from neko.errors import NekoError
from neko.moe.assignment import NO_TASK, ExpertAssignment
from neko.moe.context import RouterRecord, current_routing
from neko.moe.modes import RoutingMode

_ROUTERS = {
    "mixtral": ("mixtral.modeling_mixtral", "MixtralTopKRouter"),
    "qwen2_moe": ("qwen2_moe.modeling_qwen2_moe", "Qwen2MoeTopKRouter"),
    "qwen3_moe": ("qwen3_moe.modeling_qwen3_moe", "Qwen3MoeTopKRouter"),
    "olmoe": ("olmoe.modeling_olmoe", "OlmoeTopKRouter"),
}
ROUTER_FAMILIES = tuple(_ROUTERS)
"""The model types task guidance supports."""


def router_type(model_type: str) -> type[nn.Module]:
    """The transformers router module class of a supported `model_type`; only that family's modeling
    module is imported (each costs tens of milliseconds at start-up)."""
    module, name = _ROUTERS[model_type]
    return getattr(importlib.import_module(f"transformers.models.{module}"), name)


_LAYER_INDEX = re.compile(r"layers\.(\d+)\.")


def task_guided_top_k(
    router_logits: torch.Tensor, forced_expert: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and indices `(tokens, top_k)` of the rule for tokens that all have a task.

    `forced_expert` is `(tokens,)`. The forced expert takes slot 0; the rest are the gate's best
    among the other experts; weights are their softmax probabilities renormalised.
    """
    probs = torch.softmax(router_logits.float(), dim=-1)
    others = probs.scatter(1, forced_expert[:, None], float("-inf"))
    _, rest = torch.topk(others, top_k - 1, dim=-1)
    indices = torch.cat([forced_expert[:, None], rest], dim=-1)
    weights = probs.gather(1, indices)
    return weights / weights.sum(dim=-1, keepdim=True), indices


@dataclass
class TaskGuidance:
    """What `apply_task_guidance` attached to a model; kept at `model.neko_guidance`."""

    assignment: ExpertAssignment
    strategy: RoutingMode
    handles: list[RemovableHandle] = field(default_factory=list)


def apply_task_guidance(
    model: nn.Module, assignment: ExpertAssignment, strategy: RoutingMode | str = RoutingMode.TASK_GUIDED
) -> nn.Module:
    """Make a supported transformers MoE model route by task (in place); returns the model.

    `strategy` is a `RoutingMode` other than `dense`, or its name."""
    strategy = routing_mode(strategy)
    if strategy is RoutingMode.DENSE:
        raise NekoError("routing mode 'dense' has no experts to route; build a dense model instead")
    routers = find_routers(model)
    num_experts = routers[0][1].num_experts
    if assignment.num_experts != num_experts:
        raise NekoError(
            f"the expert map is for {assignment.num_experts} experts but the model has {num_experts}"
        )
    remove_task_guidance(model)
    guidance = TaskGuidance(assignment, strategy)
    for layer, router in routers:
        hook = _RouterHook(layer, assignment, strategy)
        guidance.handles.append(router.register_forward_hook(hook))
    model.neko_guidance = guidance
    return model


def remove_task_guidance(model: nn.Module) -> nn.Module:
    """Undo `apply_task_guidance`: the model routes exactly as stock transformers again."""
    guidance: TaskGuidance | None = getattr(model, "neko_guidance", None)
    if guidance is not None:
        for handle in guidance.handles:
            handle.remove()
        del model.neko_guidance
    return model


def routing_mode(name: RoutingMode | str) -> RoutingMode:
    """The `RoutingMode` called `name`, or a one-line error listing them."""
    try:
        return RoutingMode(name)
    except ValueError:
        raise NekoError(f"unknown routing mode {name!r}; expected one of {', '.join(RoutingMode)}") from None


def find_routers(model: nn.Module) -> list[tuple[int, nn.Module]]:
    """(layer index, router module) of every MoE layer, or a one-line error for other models."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ROUTER_FAMILIES:
        raise NekoError(
            f"task-guided routing does not support model type {model_type!r}; "
            f"supported: {', '.join(ROUTER_FAMILIES)} (upcycle a dense model with `neko.moe.upcycle`)"
        )
    router_class = router_type(model_type)
    routers = []
    for name, module in model.named_modules():
        if isinstance(module, router_class):
            match = _LAYER_INDEX.search(name + ".")
            routers.append((int(match.group(1)) if match else len(routers), module))
    if not routers:
        raise NekoError(
            f"no {router_class.__name__} found in the {model_type} model: its MoE layers may be disabled"
        )
    return routers


class _RouterHook:
    """Forward hook of one router: applies the rule, records what was routed."""

    def __init__(self, layer: int, assignment: ExpertAssignment, strategy: RoutingMode) -> None:
        self.layer = layer
        self.strategy = strategy
        self.expert_table = assignment.expert_table()

    def __call__(self, router: nn.Module, inputs: tuple, output: tuple) -> tuple | None:
        context = current_routing()
        if context is None:
            return None
        router_logits, weights, indices = output
        tokens = router_logits.shape[0]
        task_ids = context.tokens(tokens, context.task_ids)
        forced = None
        if task_ids is not None:
            table = self.expert_table.to(task_ids.device)
            forced = torch.where(task_ids == NO_TASK, NO_TASK, table[task_ids.clamp(min=0)])
            if router.training and self.strategy is RoutingMode.TASK_GUIDED:
                weights, indices = self._guide(router_logits, weights, indices, forced, router.top_k)
        valid = context.tokens(tokens, context.attention_mask)
        valid = None if valid is None else valid.bool()
        if context.records is not None:
            context.records.append(RouterRecord(self.layer, router_logits, indices, forced, valid))
        if context.stats is not None and task_ids is not None:
            context.stats.add(self.layer, router_logits.detach(), indices, task_ids, valid)
        return router_logits, weights, indices

    @staticmethod
    def _guide(router_logits, weights, indices, forced, top_k):
        has_task = forced != NO_TASK
        if not has_task.any():
            return weights, indices
        guided_weights, guided_indices = task_guided_top_k(router_logits[has_task], forced[has_task], top_k)
        weights = weights.clone()
        indices = indices.clone()
        weights[has_task] = guided_weights.to(weights.dtype)
        indices[has_task] = guided_indices
        return weights, indices
