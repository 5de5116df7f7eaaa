"""The side channel that carries task ids to the routers.

Decoder layers call their MoE block with the hidden states only, so task ids cannot travel as
arguments. They travel in a `ContextVar` set by the `task_routing` context manager:

- per token: a `(batch, seq)` tensor, so a batch mixing tasks (or a packed row holding several
  examples) routes every token by its own task; a `(batch,)` tensor is expanded along the sequence;
- no leaks: leaving the `with` block restores whatever was there before, so a later forward pass
  sees no stale ids;
- gradient checkpointing: the backward pass recomputes each layer, possibly in another thread and
  after the `with` block has closed. `checkpoint_context_fn` (used by `enable_gradient_checkpointing`)
  captures the routing context at forward time and re-installs it for the recomputation, with
  recording switched off so losses and statistics are not counted twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from neko.moe.stats import RoutingStats


@dataclass
class RouterRecord:
    """What one router did in one forward pass, kept for the auxiliary losses.

    `router_logits` is `(tokens, experts)` with its graph; `selected` is `(tokens, top_k)`, the experts
    actually used (forced ones included); `forced` is `(tokens,)`, f(T) or -1; `valid` masks padding.
    """

    layer: int
    router_logits: torch.Tensor
    selected: torch.Tensor
    forced: torch.Tensor | None
    valid: torch.Tensor | None


@dataclass
class RoutingContext:
    """Task ids (and what to collect) for the forward passes run inside `task_routing`."""

    task_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    stats: RoutingStats | None = None
    records: list[RouterRecord] | None = field(default_factory=list)

    def tokens(self, count: int, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """`tensor` ((batch,) or (batch, seq)) flattened to one value per routed token."""
        if tensor is None:
            return None
        if tensor.dim() == 1:
            if count % tensor.numel():
                raise ValueError(f"{count} routed tokens do not split into {tensor.numel()} rows")
            tensor = tensor.repeat_interleave(count // tensor.numel())
        tensor = tensor.reshape(-1)
        if tensor.numel() != count:
            raise ValueError(
                f"task routing got ids for {tensor.numel()} tokens but the router sees {count}; "
                "pass one id per row (batch,) or per token (batch, seq) of this forward pass"
            )
        return tensor


_CURRENT: ContextVar[RoutingContext | None] = ContextVar("neko_routing_context", default=None)


def current_routing() -> RoutingContext | None:
    return _CURRENT.get()


@contextlib.contextmanager
def task_routing(
    task_ids: torch.Tensor | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    stats: RoutingStats | None = None,
    record: bool = True,
) -> Iterator[RoutingContext]:
    """Route the forward passes inside the block with these task ids.

    `task_ids` are ids into the model's `ExpertAssignment.tasks` (-1: no task). In training mode the
    task-guided router forces each token's task expert; in eval mode ids only label tokens for
    `stats`. The yielded context's `records` feed `neko.moe.losses`.
    """
    context = RoutingContext(task_ids, attention_mask, stats, [] if record else None)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def checkpoint_context_fn() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    """`context_fn` for non-reentrant `torch.utils.checkpoint`: replay the routing context on recompute."""
    captured = _CURRENT.get()
    replay = None if captured is None else dataclasses.replace(captured, stats=None, records=None)
    return contextlib.nullcontext(), _installed(replay)


@contextlib.contextmanager
def _installed(context: RoutingContext | None) -> Iterator[None]:
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Turn on gradient checkpointing in a way that keeps task-guided routing correct on recompute."""
    model.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False, "context_fn": checkpoint_context_fn}
    )
