"""The training recipe: one corrector on a mixture of tasks, on a CPU or, under a multi-process launch
(torchrun, `accelerate launch`), data-parallel on many processes without a change.

Per step: a token-budget batch mixing tasks -> forward inside `task_routing` (each token carries its
task id) -> next-token NLL on the response tokens -> + router auxiliary losses computed from the
routes actually taken -> backward, clip, AdamW, scheduler. N processes with accumulation A take the
batches one process takes with accumulation N x A, and their gradients are averaged the same way, so
both runs train the same model. Checkpoints are atomic and a resumed run replays the same batches,
so kill + resume ends where an uninterrupted run ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from neko.errors import NekoError
from neko.io import atomic_folder
from neko.moe import ExpertAssignment, damex_loss, load_balancing_loss, task_routing
from neko.progress import new_progress
from neko.train.budget import TimeBudget
from neko.train.config import TrainConfig
from neko.train.data import IGNORE, Encoded, collate
from neko.train.metrics import IntervalStats
from neko.train.model import save_corrector
from neko.train.run_dir import MODEL_DIR, SNAPSHOT_DIR, model_written
from neko.train.setup import Run, prepare


def train(
    config: TrainConfig, resume: bool = False, overwrite: bool = False, until: int | None = None
) -> Path:
    """Run a new training run (`overwrite`: replacing the one in `run.out_dir`) or, with `resume`,
    continue the one there; returns the saved model directory. `until`: stop after that step, its
    checkpoint saved, and return that step's model (`snapshots/step-N`): an unfinished run evaluated
    on the way, which a later `resume` continues on the same schedule."""
    run = prepare(config, resume, overwrite)
    stats, started = IntervalStats(), time.perf_counter()
    budget = TimeBudget(run, started)
    run.model.train()
    with new_progress("steps/s", disable=not run.accelerator.is_main_process) as bar:
        task = bar.add_task("training", total=run.total_steps, completed=run.start)
        step, end = run.start, stop_step(run, until)
        while step < end:
            optimizer_step(run, step, stats)
            step = done = step + 1
            if not budget.sized:
                budget.after_step(done, time.perf_counter())
                end = stop_step(run, until)
                bar.update(task, total=run.total_steps)
            if done % config.run.log_every == 0 or done == end:
                log(run, done, stats, time.perf_counter() - started)
                stats, started = IntervalStats(), time.perf_counter()
            if config.run.eval_every and run.dev and done % config.run.eval_every == 0:
                run.metrics.write(done, dev_losses(run))
                started = time.perf_counter()  # the throughput of the next line counts training only
            if done % config.run.save_every == 0 or done == end:
                run.checkpoints.save(run.accelerator, done, checkpoint_state(run))
            bar.update(task, completed=done)
    if end < run.total_steps:
        return save_model(run, run.run_dir.path / SNAPSHOT_DIR / f"step-{end:08d}")
    return save_model(run, run.run_dir.path / MODEL_DIR)


def checkpoint_state(run: Run) -> dict:
    """What a checkpoint records beside the states accelerate saves."""
    state = {"total_steps": run.total_steps, "run": run.identity.key}
    if run.sized_steps is not None:
        state["sized_steps"] = run.sized_steps
    return state


def stop_step(run: Run, until: int | None) -> int:
    """The step this process stops after: `until`, at most the run's last, never one it has passed."""
    if until is None or until >= run.total_steps:
        return run.total_steps
    if until < run.start:
        raise NekoError(f"--until {until}: the run in {run.run_dir.path} is already at step {run.start}")
    return until


def optimizer_step(run: Run, step: int, stats: IntervalStats) -> None:
    """Accumulate `grad_accum` micro-batches (gradients synchronised across processes on the last
    only), clip, and step the optimizer and the schedule."""
    accelerator, model, accumulate = run.accelerator, run.model, run.config.optim.grad_accum
    for micro in range(accumulate):
        items = run.batch_items(step, micro)
        batch = collate(items, run.task_index, run.tokenizer.pad_token_id, accelerator.device)
        with accelerator.no_sync(model) if micro < accumulate - 1 else nullcontext():
            loss = training_loss(model, batch, items, run.config, run.assignment, stats)
            accelerator.backward(loss / accumulate)
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), run.config.optim.grad_clip)
    stats.add("grad_norm", float(grad_norm))
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


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


def log(run: Run, step: int, stats: IntervalStats, seconds: float) -> None:
    """One metrics line for every process's steps since the last one (a collective call)."""
    total = stats.reduced(run.accelerator)
    run.metrics.write(step, total.summary(run.scheduler.get_last_lr()[0], seconds, run.assignment))


@torch.no_grad()
def dev_losses(run: Run) -> dict[str, float]:
    """`dev_loss` and `dev_loss_TASK`: mean next-token NLL of the dev examples' targets, overall and per
    task, routed as at inference (eval mode); each process scores its share. Per task, because a small
    task's training loss falls by memorising its few examples long before its dev loss stops falling."""
    accelerator = run.accelerator
    mine = run.dev[accelerator.process_index :: accelerator.num_processes]
    run.model.eval()
    stats = IntervalStats()
    for start in range(0, len(mine), 16):
        items = mine[start : start + 16]
        batch = collate(items, run.task_index, run.tokenizer.pad_token_id, accelerator.device)
        logits = run.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        losses, mask = next_token_losses(logits, batch["labels"])
        stats.add_tokens(losses, mask, items, 0)
    run.model.train()
    return {f"dev_{key}": value for key, value in stats.reduced(accelerator).losses().items()}


def save_model(run: Run, model_dir: Path) -> Path:
    """The model as it is now, written by the main process into `model_dir` for `neko correct`; a
    reader never sees half of it. One already there is this step's model (a run folder holds one
    run), perhaps with a tuned gate or exports beside it: it is kept as it is."""
    accelerator = run.accelerator
    if accelerator.is_main_process and not model_written(model_dir):
        model = accelerator.unwrap_model(run.model)
        with atomic_folder(model_dir, replace=True) as staging:
            save_corrector(model, run.tokenizer, staging, run.config, run.assignment)
    accelerator.wait_for_everyone()
    return model_dir
