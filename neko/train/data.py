"""From examples to training batches: encoding, the task mixture, and token-budget batching.

The order of batches is a pure function of (seed, epoch): a resumed run rebuilds the same plan and
skips the steps it has done, so it sees exactly the batches an uninterrupted run would have seen.
Batches are cut by a token budget from length-sorted windows, so rows of a batch have similar
lengths and little compute goes to padding.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from neko.correct.prompts import build_prompt, encode
from neko.data.schema import Example
from neko.moe.assignment import NO_TASK
from neko.tasks import get_task

IGNORE = -100
WINDOW_BATCHES = 50
"""Examples are length-sorted within windows of about this many batches: enough to pack similar
lengths together, small enough to keep batches of one window from all being short or all long."""


@dataclass
class Encoded:
    """One training sequence: token ids, labels (-100 where no loss), and the task it belongs to."""

    input_ids: list[int]
    labels: list[int]
    task: str | None


def encode_example(
    example: Example,
    tokenizer: PreTrainedTokenizerBase,
    style: str,
    max_source_tokens: int,
    max_target_tokens: int,
    max_hypotheses: int,
    loss_on: str = "response",
) -> Encoded:
    """Prompt + target; a long prompt is fitted as at inference (`neko.correct.prompts.build_prompt`):
    worst hypotheses dropped first, then the best one cut, the markers always kept."""
    task = get_task(example.task)
    prompt = build_prompt(tokenizer, task, example.hypotheses[:max_hypotheses], style, max_source_tokens).ids
    target = encode(tokenizer, task.render_target(example.reference or "", style))[:max_target_tokens]
    prompt_labels = list(prompt) if loss_on == "sequence" else [IGNORE] * len(prompt)
    return Encoded(prompt + target, prompt_labels + target, example.task)


def encode_texts(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> list[Encoded]:
    """Lines of plain text for language-model pretraining: every token is trained, no task. One batch
    call, which the tokenizer spreads over its threads: the 646k lines of the text export take
    seconds, where one call per line takes minutes."""
    if not texts:
        return []
    rows = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    sequences = [[*row, tokenizer.eos_token_id][:max_tokens] for row in rows]
    return [Encoded(ids, list(ids), None) for ids in sequences]


def epoch_examples(groups: dict[str | None, list[int]], mixture: str, rng: random.Random) -> list[int]:
    """Indices of one epoch. `proportional`: every example once. `balanced`: each task (plain text
    counts as one group) contributes the mean group size, subsampling big and repeating small ones."""
    if mixture == "proportional":
        return [i for members in groups.values() for i in members]
    target = round(sum(len(m) for m in groups.values()) / len(groups))
    chosen = []
    for members in groups.values():
        repeats, rest = divmod(target, len(members))
        chosen += members * repeats + rng.sample(members, rest)
    return chosen


def token_budget_batches(
    indices: list[int], lengths: Sequence[int], tokens_per_batch: int, rng: random.Random
) -> list[list[int]]:
    """Shuffle, sort by length within windows, cut where rows x longest row would pass the budget."""
    order = list(indices)
    rng.shuffle(order)
    mean_length = max(1, sum(lengths[i] for i in order) // max(1, len(order)))
    window = max(1, WINDOW_BATCHES * tokens_per_batch // mean_length)
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        current: list[int] = []
        longest = 0
        for i in sorted(order[start : start + window], key=lambda i: lengths[i]):
            if current and (len(current) + 1) * max(longest, lengths[i]) > tokens_per_batch:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, lengths[i])
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


class BatchPlan:
    """Every step's batch for the whole run, fixed by the seed."""

    def __init__(
        self, encoded: Sequence[Encoded], mixture: str, tokens_per_batch: int, epochs: float, seed: int
    ) -> None:
        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, item in enumerate(encoded):
            groups[item.task].append(i)
        lengths = [len(item.input_ids) for item in encoded]
        self.batches: list[list[int]] = []
        for epoch in range(math.ceil(epochs)):
            rng = random.Random(seed * 100_003 + epoch)
            chosen = epoch_examples(groups, mixture, rng)
            epoch_batches = token_budget_batches(chosen, lengths, tokens_per_batch, rng)
            if epoch + 1 > epochs:  # a fractional last epoch
                epoch_batches = epoch_batches[: round((epochs - epoch) * len(epoch_batches))]
            self.batches += epoch_batches

    def __len__(self) -> int:
        return len(self.batches)


def collate(
    items: Sequence[Encoded], task_ids: dict[str, int], pad_id: int, device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """Right-padded tensors; `task_ids` is per token (padding and plain text: NO_TASK)."""
    width = max(len(item.input_ids) for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    tasks = torch.full((len(items), width), NO_TASK, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        input_ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        attention_mask[row, :n] = 1
        if item.task in task_ids:
            tasks[row, :n] = task_ids[item.task]
    batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask, "task_ids": tasks}
    return {name: tensor.to(device) for name, tensor in batch.items()}
