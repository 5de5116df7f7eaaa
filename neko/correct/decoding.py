"""Copy-aware greedy decoding: the same tokens as greedy search, in far fewer forward passes.

A correction mostly copies one of its hypotheses, so each step drafts the tokens that follow the
output's last few tokens in the prompt's hypotheses (`neko.correct.drafts`), and the model checks the
whole draft in one forward pass: the draft's longest prefix that greedy search would have written is kept,
plus the model's own next token. Every kept token is the model's argmax, so the output is greedy
search's, only computed with fewer, wider passes.

Rows are batched and accept different numbers of tokens: each row's rejected draft positions stay in
the KV cache as holes, masked out of attention and squeezed out when they pile up, and rows leave the
batch when they end. The cache's columns keep one layout: the left-padded prompts first (`prompt
width` columns), then the output positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neko.correct.drafts import DRAFT_TOKENS, NGRAM, DraftRow, PromptLookup, copy_sources
from neko.correct.generation import left_pad, model_device, run_prompts
from neko.correct.lm import Generated, Hopeless

HOLE_SLACK = 32
"""Output columns that may be holes in every row before the cache is squeezed (`_squeeze_holes`)."""


@torch.inference_mode()
def copy_generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_id: int,
    max_new_tokens: int,
    separators: Sequence[int] = (),
    draft_tokens: int = DRAFT_TOKENS,
    ngram: int = NGRAM,
    hopeless: Hopeless | None = None,
) -> list[Generated]:
    """Greedy continuations of one batch of prompts (as `generation.generate` with `num_beams=1`),
    drafting from each prompt's runs between `separators` (`copy_sources`); a row stops early once
    `hopeless` says so."""
    device = model_device(model)
    rows = [
        DraftRow(i, PromptLookup(copy_sources(prompt, separators, eos_id), ngram), hopeless)
        for i, prompt in enumerate(prompts)
    ]
    cache, mask, first = _prefill(model, prompts, pad_id, device)
    positions = mask.sum(-1)
    for row, token in zip(rows, first.tolist(), strict=True):
        row.take([token], eos_id, max_new_tokens)
    # the last accepted token of each row: fed at the next step, its cache entry not yet written
    pending = first
    prompt_width = mask.shape[1]
    active = list(range(len(rows)))
    while True:
        keep = [k for k, r in enumerate(active) if not rows[r].done(max_new_tokens)]
        if not keep:
            break
        if len(keep) < len(active):
            select = torch.tensor(keep, device=device)
            cache.batch_select_indices(select)
            mask, positions, pending = mask[select], positions[select], pending[select]
            active = [active[k] for k in keep]
        drafts = [
            rows[r].lookup.draft(rows[r].tokens, min(draft_tokens, max_new_tokens - len(rows[r].tokens) - 1))
            for r in active
        ]
        step, step_mask = _pack_drafts(pending, drafts, pad_id, mask.dtype, device)
        mask = torch.cat([mask, step_mask], dim=-1)
        greedy, accepted = _verify(model, cache, step, step_mask, mask, positions)
        # fed positions past the accepted draft hold junk: hole them out of attention
        width = step.shape[1]
        mask[:, -width:] = (torch.arange(width, device=device) <= accepted[:, None]).to(mask.dtype)
        positions = positions + accepted + 1
        pending = greedy.gather(1, accepted[:, None]).squeeze(1)
        for r, row_greedy, n in zip(active, greedy.tolist(), accepted.tolist(), strict=True):
            rows[r].take(row_greedy[: n + 1], eos_id, max_new_tokens)
        cache, mask = _squeeze_holes(cache, mask, prompt_width)
    return [row.result() for row in rows]


def _pack_drafts(
    pending: torch.Tensor, drafts: list[list[int]], pad_id: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's input per row, its pending token then its draft (right-padded), and the step's mask."""
    width = 1 + max(len(d) for d in drafts)
    step = torch.full((len(drafts), width), pad_id, dtype=torch.long)
    step[:, 0] = pending
    for k, draft in enumerate(drafts):
        step[k, 1 : 1 + len(draft)] = torch.tensor(draft, dtype=torch.long)
    lengths = torch.tensor([1 + len(d) for d in drafts])
    step_mask = (torch.arange(width) < lengths[:, None]).to(dtype).to(device)
    return step.to(device), step_mask


def _verify(
    model: torch.nn.Module,
    cache,
    step: torch.Tensor,
    step_mask: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's greedy token after each fed position of `step` (one pass, written into `cache`),
    and per row how many of its draft tokens greedy search would have written (the longest prefix)."""
    hidden = model.base_model(
        input_ids=step,
        attention_mask=mask,
        position_ids=positions[:, None] + torch.arange(step.shape[1], device=step.device),
        cache=cache,
        use_cache=True,
    ).last_hidden_state
    # logits of the fed positions only: the padding of short drafts needs none
    fed = step_mask.bool()
    greedy = torch.zeros(fed.shape, dtype=torch.long, device=step.device)
    greedy[fed] = model.get_output_embeddings()(hidden[fed]).argmax(-1)
    matches = (greedy[:, :-1] == step[:, 1:]) & fed[:, 1:]
    return greedy, matches.long().cumprod(-1).sum(-1)


def _prefill(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[object, torch.Tensor, torch.Tensor]:
    """Run the prompts, in groups of similar length (little padding), into one left-padded cache;
    returns it, its attention mask and each row's first greedy token."""
    from transformers import DynamicCache

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    width = len(prompts[order[0]])
    groups: list[list[int]] = []
    for i in order:
        if not groups or len(prompts[i]) < 0.9 * len(prompts[groups[-1][0]]):
            groups.append([])
        groups[-1].append(i)
    keys: list[list[torch.Tensor]] = []
    values: list[list[torch.Tensor]] = []
    firsts = []
    for group in groups:
        logits, group_cache, input_ids, _ = run_prompts(model, [prompts[i] for i in group], pad_id, device, 1)
        firsts.append(logits[:, -1].argmax(-1))
        extra = width - input_ids.shape[1]
        for layer, (k, v, _) in enumerate(group_cache):
            if layer == len(keys):
                keys.append([])
                values.append([])
            keys[layer].append(torch.nn.functional.pad(k, (0, 0, extra, 0)))
            values[layer].append(torch.nn.functional.pad(v, (0, 0, extra, 0)))
    back = torch.tensor(order, device=device).argsort()
    cache = DynamicCache(
        [(torch.cat(k)[back], torch.cat(v)[back]) for k, v in zip(keys, values, strict=True)]
    )
    _, mask, _ = left_pad(prompts, pad_id, device)
    return cache, mask, torch.cat(firsts)[back]


def _squeeze_holes(cache, mask: torch.Tensor, prompt_width: int):
    """Once more than `HOLE_SLACK` output columns are holes in every row's share, move each row's kept
    output columns to the front of the output area (in order) and cut the rest; the prompt columns
    stay as they are."""
    outputs = mask[:, prompt_width:]
    kept = outputs.sum(-1)
    width = int(kept.max())
    if outputs.shape[1] - width <= HOLE_SLACK:
        return cache, mask
    # per row: its kept output columns first (in order), then holes
    order = torch.sort(outputs == 0, dim=-1, stable=True).indices[:, :width] + prompt_width
    columns = torch.cat([torch.arange(prompt_width, device=mask.device).expand(len(mask), -1), order], dim=-1)
    for layer in cache.layers:
        index = columns[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
        layer.keys = layer.keys.gather(2, index)
        layer.values = layer.values.gather(2, index)
    new_mask = mask.gather(1, columns)
    return cache, new_mask
