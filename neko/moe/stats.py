"""Which experts each task's tokens actually use: counts and mean gate probabilities.

Collected by the routing hooks while a `RoutingStats` is passed to `task_routing(..., stats=...)`,
typically at evaluation, where routing is the plain top-2 and task ids only label the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RoutingStats:
    """Accumulates, per task x layer x expert, routed-token counts and summed gate probabilities."""

    def __init__(self, tasks: Sequence[str], num_layers: int, num_experts: int) -> None:
        self.tasks = list(tasks)
        self.num_layers = num_layers
        self.num_experts = num_experts
        shape = (len(self.tasks), num_layers, num_experts)
        self.counts = torch.zeros(shape, dtype=torch.long)
        self.prob_sums = torch.zeros(shape, dtype=torch.float64)
        self.tokens = torch.zeros(shape[:2], dtype=torch.long)

    def add(
        self,
        layer: int,
        router_logits: torch.Tensor,
        selected: torch.Tensor,
        task_ids: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> None:
        """Count one router call: `selected` (tokens, k) experts used, `task_ids` (tokens,)."""
        keep = task_ids >= 0
        if valid is not None:
            keep &= valid
        task_ids, selected = task_ids[keep].cpu(), selected[keep].cpu()
        probs = torch.softmax(router_logits[keep].float(), dim=-1).cpu().double()
        one_hot = torch.nn.functional.one_hot(selected, self.num_experts).sum(dim=1)
        self.counts[:, layer].index_add_(0, task_ids, one_hot)
        self.prob_sums[:, layer].index_add_(0, task_ids, probs)
        self.tokens[:, layer].index_add_(0, task_ids, torch.ones_like(task_ids))

    def mean_gate_prob(self) -> torch.Tensor:
        return self.prob_sums / self.tokens.clamp(min=1).unsqueeze(-1)

    def to_dict(self) -> dict:
        """Plain data for reports and heatmaps (`neko.evaluate`)."""
        return {
            "tasks": self.tasks,
            "num_layers": self.num_layers,
            "num_experts": self.num_experts,
            "counts": self.counts.tolist(),
            "mean_gate_prob": self.mean_gate_prob().tolist(),
        }
