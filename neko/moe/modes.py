"""The names of the routing modes (no torch here: `neko.json` and the configs name them)."""

from __future__ import annotations

from enum import StrEnum


class RoutingMode(StrEnum):
    """How a model routes tokens to experts: one name from the training config to `neko.json`.

    `task_guided`: neko's rule. `moe`: plain top-k routing (vanilla MoE), with records and
    statistics. `damex`: plain top-k routing; training adds a cross-entropy pulling the router
    towards f(T) (`neko.moe.losses.damex_loss`). `dense`: no experts, nothing to route.
    """

    TASK_GUIDED = "task_guided"
    MOE = "moe"
    DAMEX = "damex"
    DENSE = "dense"
