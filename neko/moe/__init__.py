"""Task-guided routing for Mixtral-family MoE language models (see `routing` for the rule)."""

from neko.moe.assignment import NO_TASK, ExpertAssignment
from neko.moe.context import enable_gradient_checkpointing, task_routing
from neko.moe.losses import damex_loss, load_balancing_loss
from neko.moe.routing import RoutingMode, apply_task_guidance, remove_task_guidance, task_guided_top_k
from neko.moe.stats import RoutingStats

__all__ = [
    "NO_TASK",
    "ExpertAssignment",
    "RoutingMode",
    "RoutingStats",
    "apply_task_guidance",
    "damex_loss",
    "enable_gradient_checkpointing",
    "load_balancing_loss",
    "remove_task_guidance",
    "task_guided_top_k",
    "task_routing",
]
