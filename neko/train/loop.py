"""The training recipe: one corrector on a mixture of tasks, on a CPU or, under `accelerate launch`,
on many GPUs (DDP, FSDP, DeepSpeed) without a change.

Per step: a token-budget batch mixing tasks -> forward inside `task_routing` (each token carries its
task id) -> next-token NLL on the response tokens -> + router auxiliary losses computed from the
routes actually taken -> backward, clip, AdamW, scheduler. Checkpoints are atomic and a resumed run
replays the same batches, so kill + resume ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoTokenizer, get_scheduler

from neko.correct.model_dir import ROUTING_STRATEGY
from neko.data.schema import Example
from neko.errors import NekoError
from neko.moe import (
    ExpertAssignment,
    apply_task_guidance,
    damex_loss,
    enable_gradient_checkpointing,
    load_balancing_loss,
    task_routing,
)
from neko.moe.context import RouterRecord
from neko.train.checkpoints import Checkpoints
from neko.train.config import TrainConfig
from neko.train.data import IGNORE, BatchPlan, Encoded, collate, encode_example, encode_text
from neko.train.model import (
    add_lora,
    build_model,
    build_tokenizer,
    num_experts,
    save_corrector,
)

METRICS_FILE = "metrics.jsonl"


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or, with `resume`, continue) a training run; returns the saved model directory."""
    run_dir = Path(config.run.out_dir)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    accelerator = Accelerator(mixed_precision="bf16" if config.run.bf16 else "no")
    set_seed(config.run.seed)
    examples = load_examples(config.data.train)
    texts = load_texts(config.data.text)

    tokenizer = _tokenizer(config, run_dir, examples, texts, accelerator)
    model = build_model(config, tokenizer)
    assignment = None if config.mode == "dense" else config.assignment(num_experts(model))
    if assignment is not None:
        apply_task_guidance(model, assignment, ROUTING_STRATEGY[config.mode])
    if config.run.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.model.lora is not None:
        model = add_lora(model, config)

    encoded = encode_all(config, tokenizer, examples, texts)
    plan = BatchPlan(
        encoded, config.data.mixture, config.optim.tokens_per_batch, config.optim.epochs, config.run.seed
    )
    micro_per_step = config.optim.grad_accum * accelerator.num_processes
    total_steps = len(plan) // micro_per_step
    if config.optim.max_steps is not None:
        total_steps = min(total_steps, config.optim.max_steps)
    optimizer = make_optimizer(model, config)
    scheduler = get_scheduler(config.optim.schedule, optimizer, config.optim.warmup_steps, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    checkpoints = Checkpoints(run_dir / "checkpoints", config.run.keep_last)
    start = checkpoints.restore(accelerator).get("step", 0) if resume else 0
    metrics = MetricsLog(run_dir / METRICS_FILE, accelerator.is_main_process, start, config.run.tensorboard)
    task_index = {task: i for i, task in enumerate(assignment.tasks if assignment else config.tasks)}
    dev = encode_all(config, tokenizer, load_examples(config.data.dev), []) if config.data.dev else []

    model.train()
    stats, started = IntervalStats(), time.perf_counter()
    with _progress(accelerator) as progress:
        bar = progress.add_task("training", total=total_steps, completed=start)
        for step in range(start, total_steps):
            for micro in range(config.optim.grad_accum):
                index = (step * config.optim.grad_accum + micro) * accelerator.num_processes
                items = [encoded[i] for i in plan.batches[index + accelerator.process_index]]
                batch = collate(items, task_index, tokenizer.pad_token_id, accelerator.device)
                loss = training_loss(model, batch, items, config, assignment, stats)
                accelerator.backward(loss / config.optim.grad_accum)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            stats.add("grad_norm", float(grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            if done % config.run.log_every == 0 or done == total_steps:
                summary = stats.summary(scheduler.get_last_lr()[0], time.perf_counter() - started, assignment)
                metrics.write(done, summary)
                stats, started = IntervalStats(), time.perf_counter()
            if config.run.eval_every and dev and done % config.run.eval_every == 0:
                metrics.write(done, dev_losses(model, dev, task_index, tokenizer, accelerator))
                started = time.perf_counter()  # the throughput of the next line counts training only
            if done % config.run.save_every == 0 and done < total_steps:
                checkpoints.save(accelerator, done, {"total_steps": total_steps})
            progress.update(bar, completed=done)

    model_dir = run_dir / "model"
    if accelerator.is_main_process:
        save_corrector(accelerator.unwrap_model(model), tokenizer, model_dir, config, assignment)
    accelerator.wait_for_everyone()
    return model_dir


def training_loss(
    model,
    batch: dict,
    items: Sequence[Encoded],
    config: TrainConfig,
    assignment: ExpertAssignment | None,
    stats: IntervalStats,
) -> torch.Tensor:
    """Token-mean NLL plus the router losses of this run's mode; fills `stats` for the log."""
    with task_routing(batch["task_ids"], attention_mask=batch["attention_mask"]) as routing:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    token_losses, mask = next_token_losses(logits, batch["labels"])
    loss = token_losses.sum() / mask.sum().clamp(min=1)
    stats.add_tokens(token_losses, mask, items, int(batch["attention_mask"].sum()))
    if assignment is not None:
        aux = load_balancing_loss(routing.records, assignment.num_experts)
        loss = loss + config.aux_loss_coef * aux
        stats.add("aux_loss", float(aux.detach()))
        if config.mode == "damex":
            router_ce = damex_loss(routing.records)
            loss = loss + config.damex_loss_coef * router_ce
            stats.add("damex_loss", float(router_ce.detach()))
        stats.add_routes(routing.records)
    return loss


def next_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL (batch, seq-1) of predicting labels[t+1] at t, zero where the label is ignored."""
    targets = labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets.clamp(min=0), reduction="none")
    mask = targets != IGNORE
    return losses * mask, mask


@torch.no_grad()
@torch.no_grad()
def dev_losses(
    model, dev: list[Encoded], task_index: dict[str, int], tokenizer, accelerator: Accelerator
) -> dict[str, float]:
    """`dev_loss` and `dev_loss_TASK`: mean next-token NLL of the dev examples' targets, overall and per
    task, routed as at inference (eval mode). Per task, because a small task's training loss falls by
    memorising its few examples long before its dev loss stops falling."""
    model.eval()
    stats = IntervalStats()
    for start in range(0, len(dev), 16):
        items = dev[start : start + 16]
        batch = collate(items, task_index, tokenizer.pad_token_id, accelerator.device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses, mask = next_token_losses(logits, batch["labels"])
        stats.add_tokens(losses, mask, items, 0)
    model.train()
    return {f"dev_{key}": value for key, value in stats.losses().items()}


class IntervalStats:
    """What one log line reports, over every step since the previous line: loss overall and per task
    (token means), the mean of each scalar (gradient norm, router losses), expert load per task, and
    the throughput. A line per step would be too many; one step's loss alone too noisy to read."""

    def __init__(self) -> None:
        self.loss_sum: dict[str, float] = defaultdict(float)
        self.token_count: dict[str, int] = defaultdict(int)
        self.scalars: dict[str, float] = defaultdict(float)
        self.scalar_counts: dict[str, int] = defaultdict(int)
        self.routes: dict[int, torch.Tensor] = {}
        self.tokens = 0

    def add_tokens(
        self, losses: torch.Tensor, mask: torch.Tensor, items: Sequence[Encoded], tokens: int
    ) -> None:
        self.tokens += tokens
        row_loss, row_count = losses.sum(dim=1).tolist(), mask.sum(dim=1).tolist()
        for item, loss, count in zip(items, row_loss, row_count, strict=True):
            for key in ("all", item.task or "text"):
                self.loss_sum[key] += loss
                self.token_count[key] += count

    def add(self, name: str, value: float) -> None:
        self.scalars[name] += value
        self.scalar_counts[name] += 1

    def add_routes(self, records: list[RouterRecord]) -> None:
        """Count (forced expert, used expert) pairs: the forced expert stands for the task."""
        for record in records:
            if record.forced is None:
                continue
            keep = record.forced >= 0
            forced = record.forced[keep].detach().cpu()
            used = record.selected[keep].detach().cpu()
            experts = record.router_logits.shape[-1]
            pairs = forced[:, None] * experts + used
            counts = torch.bincount(pairs.reshape(-1), minlength=experts * experts).reshape(experts, experts)
            self.routes[record.layer] = self.routes.get(record.layer, 0) + counts

    def losses(self) -> dict[str, float]:
        """`loss` (all tokens) and `loss_TASK`: token means."""
        return {
            "loss" if key == "all" else f"loss_{key}": self.loss_sum[key] / max(self.token_count[key], 1)
            for key in self.loss_sum
        }

    def summary(self, lr: float, seconds: float, assignment: ExpertAssignment | None) -> dict:
        out = self.losses() | {"lr": lr, "tokens_per_s": self.tokens / max(seconds, 1e-9)}
        out.update({name: total / self.scalar_counts[name] for name, total in self.scalars.items()})
        if assignment is not None and self.routes:
            load = sum(self.routes.values()).double()
            out["expert_load"] = {
                task: [round(x, 4) for x in (load[e] / load[e].sum().clamp(min=1)).tolist()]
                for task, e in assignment.task_to_expert.items()
                if load[e].sum() > 0
            }
        return out


class MetricsLog:
    """metrics.jsonl, one JSON object per logged step (and, optionally, the same scalars to
    tensorboard); a resumed run first drops the lines past its restart."""

    def __init__(self, path: Path, enabled: bool, keep_until: int, tensorboard: bool = False) -> None:
        self.path = path
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if json.loads(line).get("step", 0) <= keep_until
            ]
        temporary = path.with_suffix(".tmp")
        temporary.write_text("".join(line + "\n" for line in kept))
        os.replace(temporary, path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise NekoError(
                    "run.tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(path.parent / "tensorboard"), purge_step=keep_until + 1)

    def write(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as out:
            out.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(name, value, step)
            self.writer.flush()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def load_examples(sources) -> list[Example]:
    from neko.data.formats import read_examples

    examples = []
    for source in sources:
        found = read_examples(source.path, format=source.format, task=source.task)
        examples += found[: source.limit] if source.limit else found
    return examples


def load_texts(paths: Sequence[str]) -> list[str]:
    from neko.data.jsonl import open_text

    texts = []
    for path in paths:
        with open_text(path) as lines:
            texts += [line.strip() for line in lines if line.strip()]
    return texts


def encode_all(config: TrainConfig, tokenizer, examples: list[Example], texts: list[str]) -> list[Encoded]:
    data = config.data
    encoded = [
        encode_example(
            e,
            tokenizer,
            data.prompt_style,
            data.max_source_tokens,
            data.max_target_tokens,
            data.max_hypotheses,
            data.loss_on,
        )
        for e in examples
    ]
    return encoded + [
        encode_text(t, tokenizer, data.max_source_tokens + data.max_target_tokens) for t in texts
    ]


def _tokenizer(config: TrainConfig, run_dir: Path, examples: list[Example], texts: list[str], accelerator):
    """The run's tokenizer: trained once, saved in the run directory, reloaded on resume."""
    saved = run_dir / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(saved)
    corpus = texts + [t for e in examples for t in [*e.hypotheses, *e.references]]
    tokenizer = build_tokenizer(config, corpus)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(saved)
    accelerator.wait_for_everyone()
    return tokenizer


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; norms, biases and the router stay out of weight decay."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.dim() < 2 or name.endswith("gate.weight") or "norm" in name
        (no_decay if exempt else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=config.optim.betas)


def _progress(accelerator: Accelerator) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not accelerator.is_main_process,
    )
