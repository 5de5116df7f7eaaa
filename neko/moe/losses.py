"""Auxiliary router losses computed from what the routers actually did.

transformers' `load_balancing_loss_func` recomputes the top-k from the router logits, so under
task-guided routing it would count experts the tokens never went to and miss the forced ones. These
losses read the `RouterRecord`s that the routing hooks collect instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neko.moe.assignment import NO_TASK
from neko.moe.context import RouterRecord


def load_balancing_loss(records: list[RouterRecord], num_experts: int) -> torch.Tensor:
    """Switch-Transformer balancing loss, `E * sum_e f_e * P_e`, averaged over layers.

    f_e: share of routed (token, slot) pairs that went to expert e, forced routes included;
    P_e: mean gate probability of e. Padding tokens (`valid` False) are left out. 1.0 is balanced.
    """
    if not records:
        return torch.zeros(())
    losses = []
    for record in records:
        probs = torch.softmax(record.router_logits.float(), dim=-1)
        selected = record.selected
        if record.valid is not None:
            probs, selected = probs[record.valid], selected[record.valid]
        if probs.shape[0] == 0:
            continue
        dispatch = F.one_hot(selected, num_experts).float().sum(dim=1)  # (tokens, experts)
        share = dispatch.sum(dim=0) / dispatch.sum()
        losses.append(num_experts * torch.sum(share * probs.mean(dim=0)))
    return torch.stack(losses).mean() if losses else torch.zeros(())


def damex_loss(records: list[RouterRecord]) -> torch.Tensor:
    """DAMEX-style router supervision: cross-entropy of the gate against f(T) on tokens with a task."""
    losses = []
    for record in records:
        if record.forced is None:
            continue
        keep = record.forced != NO_TASK
        if record.valid is not None:
            keep &= record.valid
        if keep.any():
            losses.append(F.cross_entropy(record.router_logits[keep].float(), record.forced[keep]))
    return torch.stack(losses).mean() if losses else torch.zeros(())
