"""Batched forward passes over token-id rows: generation, target scoring, and batching by length.

Rows are left-padded (decoder-only models continue at the right edge), with an attention mask and
position ids that start at 0 on each row's first real token, so a row gives the same result whatever
it is batched with. Work is grouped by length (`length_batches`) to waste little on padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from neko.errors import NekoError


@dataclass(frozen=True)
class Generated:
    """New token ids of one row, up to (not including) the end marker; `finished`: the marker came."""

    ids: list[int]
    finished: bool


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows at once)."""
    if batch_size < 1:
        raise NekoError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`input_ids`, `attention_mask` and `position_ids` of left-padded rows."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, width - len(row) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), attention_mask.to(device), position_ids.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_id: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> list[Generated]:
    """Greedy (`num_beams=1`) or beam-search continuations of one batch of prompts, KV cache on."""
    from transformers import GenerationConfig

    input_ids, attention_mask, _ = left_pad(prompts, pad_id, model_device(model))
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=1,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        use_cache=True,
    )
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    results = []
    for row in output[:, input_ids.shape[1] :].tolist():
        if eos_id in row:
            results.append(Generated(row[: row.index(eos_id)], finished=True))
        else:
            results.append(Generated(row, finished=False))
    return results


@torch.inference_mode()
def score_targets(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], *, pad_id: int
) -> list[float]:
    """Sum of the log-probabilities of each target's tokens following its prompt (one batch)."""
    rows = [list(p) + list(t) for p, t in zip(prompts, targets, strict=True)]
    input_ids, attention_mask, position_ids = left_pad(rows, pad_id, model_device(model))
    width = max(len(t) for t in targets)
    if width == 0:
        return [0.0] * len(rows)
    # Targets sit at the right edge: only the last `width + 1` positions' logits are needed.
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=width + 1,
        use_cache=False,
    ).logits[:, :-1]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    next_ids = input_ids[:, -width:]
    token_scores = log_probs.gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)
    lengths = torch.tensor([len(t) for t in targets], device=token_scores.device)
    in_target = torch.arange(width, device=token_scores.device) >= (width - lengths).unsqueeze(-1)
    return torch.where(in_target, token_scores, 0.0).sum(-1).tolist()


@torch.inference_mode()
def collect_routing(
    model: torch.nn.Module, rows: Sequence[Sequence[int]], task_ids: Sequence[int], stats, *, pad_id: int
) -> None:
    """Run a batch of rows through the model, adding what its routers do to `stats` (a `RoutingStats`);
    each row's tokens are labelled with its task id, padding is left out."""
    from neko.moe import task_routing

    input_ids, attention_mask, position_ids = left_pad(rows, pad_id, model_device(model))
    ids = torch.tensor(list(task_ids), dtype=torch.long, device=input_ids.device)
    with task_routing(ids, attention_mask=attention_mask, stats=stats, record=False):
        model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=1,
            use_cache=False,
        )


@torch.inference_mode()
def mean_token_logprobs(
    model: torch.nn.Module, rows: Sequence[Sequence[int]], *, pad_id: int, skip_ids: Sequence[int] = ()
) -> list[float]:
    """Per row, the mean log-probability of its tokens after the first, each given those before it,
    leaving out tokens in `skip_ids` (markers): how familiar the row's text is to the model."""
    input_ids, attention_mask, position_ids = left_pad(rows, pad_id, model_device(model))
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits[:, :-1]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    next_ids = input_ids[:, 1:]
    token_scores = log_probs.gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)
    counted = attention_mask[:, :-1].bool() & attention_mask[:, 1:].bool()
    for skip in skip_ids:
        counted &= next_ids != skip
    totals = torch.where(counted, token_scores, 0.0).sum(-1)
    return (totals / counted.sum(-1).clamp(min=1)).tolist()
