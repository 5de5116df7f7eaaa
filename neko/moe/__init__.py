"""Task-guided routing for Mixtral-family MoE language models (see `routing` for the rule).

`ExpertAssignment` and `RoutingMode` import without torch (a `neko.json` names them); the rest is
imported on first use, so that reading a model's settings does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neko.moe.assignment import NO_TASK, ExpertAssignment
from neko.moe.modes import RoutingMode

if TYPE_CHECKING:
    from neko.moe.context import enable_gradient_checkpointing, task_routing
    from neko.moe.losses import damex_loss, load_balancing_loss
    from neko.moe.routing import apply_task_guidance, remove_task_guidance, task_guided_top_k
    from neko.moe.stats import RoutingStats

_HOMES = {
    "RoutingStats": "neko.moe.stats",
    "apply_task_guidance": "neko.moe.routing",
    "damex_loss": "neko.moe.losses",
    "enable_gradient_checkpointing": "neko.moe.context",
    "load_balancing_loss": "neko.moe.losses",
    "remove_task_guidance": "neko.moe.routing",
    "task_guided_top_k": "neko.moe.routing",
    "task_routing": "neko.moe.context",
}
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


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'neko.moe' has no attribute {name!r}")
