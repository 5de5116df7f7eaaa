"""Batched forward passes over token-id rows: generation and target scoring (batches by length:
`neko.correct.lm.length_batches`).

Rows are left-padded (decoder-only models continue at the right edge), with an attention mask and
position ids that start at 0 on each row's first real token, so a row gives the same result whatever
it is batched with. Targets
scored after a prompt continue from its KV cache, right-padded, so a prompt runs once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neko.correct.lm import Generated, PromptScores


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


def run_prompts(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device, keep: int
) -> tuple[torch.Tensor, object, torch.Tensor, torch.Tensor]:
    """One pass over left-padded `prompts` into a fresh KV cache: the logits of the last `keep`
    positions (0: all), the cache, and the rows' `input_ids` and `attention_mask`."""
    from transformers import DynamicCache

    input_ids, attention_mask, position_ids = left_pad(prompts, pad_id, device)
    cache = DynamicCache()
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=True,
        logits_to_keep=keep,
    ).logits
    return logits, cache, input_ids, attention_mask


@torch.inference_mode()
def score_after_prompts(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    targets: Sequence[Sequence[Sequence[int]]],
    *,
    pad_id: int,
    rows_per_pass: int,
    familiarity_skip_ids: Sequence[int] | None = None,
) -> list[PromptScores]:
    """Score several targets (non-empty) after each prompt (one batch) while running each prompt once.

    The left-padded prompts run in one pass that keeps the KV cache; each target then continues from
    its prompt's cache rows, `rows_per_pass` targets per pass (right-padded), its first token scored
    by the prompt pass's last logits. `familiarity_skip_ids` (markers) asks for each prompt's
    familiarity too, from the same pass.
    """
    keep = 0 if familiarity_skip_ids is not None else 1
    logits, cache, input_ids, attention_mask = run_prompts(model, prompts, pad_id, model_device(model), keep)
    familiarity: list[float | None] = [None] * len(prompts)
    if familiarity_skip_ids is not None:
        familiarity = mean_next_token_logprobs(logits, input_ids, attention_mask, familiarity_skip_ids)
    last = logits[:, -1]
    pairs = [(p, target) for p, row in enumerate(targets) for target in row]
    scores: list[float] = []
    for start in range(0, len(pairs), rows_per_pass):
        chunk = pairs[start : start + rows_per_pass]
        scores.extend(_score_continuations(model, cache, attention_mask, last, chunk, pad_id))
    results, done = [], 0
    for row, known in zip(targets, familiarity, strict=True):
        results.append(PromptScores(scores[done : done + len(row)], known))
        done += len(row)
    return results


def _score_continuations(
    model: torch.nn.Module,
    cache,
    prompt_mask: torch.Tensor,
    last_logits: torch.Tensor,
    pairs: Sequence[tuple[int, Sequence[int]]],
    pad_id: int,
) -> list[float]:
    """Summed log-probabilities of (prompt row, target) pairs: the first target token from the
    prompts' `last_logits`, the rest from one pass over the targets, right-padded, that
    continues from copies of the prompts' cache rows (whose left padding `prompt_mask` masks out)."""
    from transformers import DynamicCache

    device = prompt_mask.device
    rows = torch.tensor([p for p, _ in pairs], device=device)
    first_ids = torch.tensor([target[0] for _, target in pairs], device=device)
    totals = token_log_probs(last_logits[rows], first_ids)
    width = max(len(target) for _, target in pairs) - 1
    if width == 0:
        return totals.tolist()
    ids = torch.full((len(pairs), width + 1), pad_id, dtype=torch.long)
    for k, (_, target) in enumerate(pairs):
        ids[k, : len(target)] = torch.tensor(target, dtype=torch.long)
    ids = ids.to(device)
    lengths = torch.tensor([len(target) for _, target in pairs], device=device)
    fed = torch.arange(width, device=device) < (lengths - 1)[:, None]
    row_mask = prompt_mask[rows]
    row_cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
    logits = model(
        input_ids=ids[:, :-1],
        attention_mask=torch.cat([row_mask, fed.to(row_mask.dtype)], dim=-1),
        position_ids=row_mask.sum(-1, keepdim=True) + torch.arange(width, device=device),
        cache=row_cache,
        use_cache=True,
    ).logits
    token_scores = token_log_probs(logits, ids[:, 1:])
    return (totals + torch.where(fed, token_scores, 0.0).sum(-1)).tolist()


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


def token_log_probs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each of `ids` under the `logits` of its place (`ids.shape` + vocab), in
    float32 at least; gathering before normalising spares a log-softmax of the whole vocabulary."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def mean_next_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, skip_ids: Sequence[int]
) -> list[float]:
    """Per left-padded row, the mean log-probability of its tokens after the first, each given those
    before it (`logits` of every position), leaving out tokens in `skip_ids` (markers): how familiar
    the row's text is to the model."""
    next_ids = input_ids[:, 1:]
    token_scores = token_log_probs(logits[:, :-1], next_ids)
    counted = attention_mask[:, :-1].bool() & attention_mask[:, 1:].bool()
    for skip in skip_ids:
        counted &= next_ids != skip
    totals = torch.where(counted, token_scores, 0.0).sum(-1)
    return (totals / counted.sum(-1).clamp(min=1)).tolist()
