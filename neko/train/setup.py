"""Everything a run needs before its first step: the data (checked), the run folder (claimed), the
tokenizer, the model, the batch plan, the optimizer and schedule, and the restored checkpoint.

The data are checked before the run folder is touched. A run replacing another (`--overwrite`)
sets the old one aside until the new one is fully prepared, so a setting found bad late (an expert
map the model cannot hold, data too small for one step) loses nothing. Every process reaches the
same decision from the same files before the main process writes any.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_scheduler

from neko.correct.model_dir import ROUTING_STRATEGY
from neko.data.schema import Example, require_references
from neko.errors import NekoError
from neko.io import check_writable_folder, read_lines
from neko.moe import ExpertAssignment, apply_task_guidance, enable_gradient_checkpointing
from neko.precision import cpu_has_bf16, emulated_bf16
from neko.train.checkpoints import Checkpoints, rewarm
from neko.train.config import DataSource, TrainConfig
from neko.train.data import BatchPlan, Encoded, encode_example, encode_texts
from neko.train.metrics import METRICS_FILE, MetricsLog
from neko.train.model import add_lora, build_model, build_tokenizer, num_experts
from neko.train.run_dir import CHECKPOINT_DIR, Identity, RunDir, data_fingerprint, recipe


@dataclass
class Run:
    """A prepared run: what the steps, the evaluation and the saving work on."""

    config: TrainConfig
    accelerator: Accelerator
    run_dir: RunDir
    identity: Identity
    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module
    assignment: ExpertAssignment | None
    task_index: dict[str, int]
    encoded: list[Encoded]
    plan: BatchPlan
    dev: list[Encoded]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total_steps: int
    start: int
    checkpoints: Checkpoints
    metrics: MetricsLog
    sized_steps: int | None = None
    """The length a time budget gave the run, from its checkpoint (`neko.train.budget`)."""
    rewarmed_from: int | None = None
    """The step a parked run continued at, its learning rate ramped up again from there."""

    def batch_items(self, step: int, micro: int) -> list[Encoded]:
        """This process's share of micro-batch `micro` of `step`: with N processes and accumulation A,
        step s takes batches (s*A + micro)*N + rank, the batches one process would take with A*N."""
        accelerator = self.accelerator
        index = (step * self.config.optim.grad_accum + micro) * accelerator.num_processes
        return [self.encoded[i] for i in self.plan.batches[index + accelerator.process_index]]


def prepare(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> Run:
    """Build a run from a validated config: a new one, or (`resume`) the one in `run.out_dir`."""
    accelerator = start_accelerator(config)
    check_writable_folder(config.run.out_dir)  # before the data are read
    examples = load_examples(config, "train")
    texts = load_texts(config.data.text)
    dev_examples = load_examples(config, "dev")
    run_dir = RunDir(Path(config.run.out_dir))
    checkpoints = Checkpoints(run_dir.path / CHECKPOINT_DIR, config.run.keep_last)
    identity = Identity(recipe(config), data_fingerprint(examples, texts))
    action = run_dir.decide(identity, resume, overwrite)
    if action == "resume" and run_dir.finished() and checkpoints.latest() is None:
        raise NekoError(
            f"{run_dir.path}: a finished run (model/) without a checkpoint to continue from; nothing to "
            "resume (pass --overwrite to train it again)"
        )
    accelerator.wait_for_everyone()  # every process has read the folder before the main one writes
    if resume and action == "new":
        notice(accelerator, f"nothing to resume in {run_dir.path}: no run there; starting a new run")
    with run_dir.replacing(action == "clear" and accelerator.is_main_process):
        tokenizer = run_tokenizer(config, run_dir, identity, action, examples, texts, accelerator)
        model, assignment = make_model(config, tokenizer)
        encoded = encode_all(config, tokenizer, examples, texts)
        plan, total_steps = plan_steps(config, encoded, accelerator)
        optimizer = make_optimizer(model, config)
        # The schedule counts optimizer steps; it stays unprepared because accelerate's wrapper would
        # advance it once per process per step and so run it N times too fast on N processes.
        scheduler = get_scheduler(config.optim.schedule, optimizer, config.optim.warmup_steps, total_steps)
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(scheduler)
        state = restore(checkpoints, accelerator, identity, model, scheduler) if action == "resume" else {}
        start = state.get("step", 0)
        dev = encode_all(config, tokenizer, dev_examples, [])
        metrics = MetricsLog(
            run_dir.path / METRICS_FILE, accelerator.is_main_process, start, config.run.tensorboard
        )
    task_index = {task: i for i, task in enumerate(assignment.tasks if assignment else config.tasks)}
    return Run(
        config, accelerator, run_dir, identity, tokenizer, model, assignment, task_index, encoded, plan,
        dev, optimizer, scheduler, total_steps, start, checkpoints, metrics, state.get("sized_steps"),
        start if state.get("weights_only") else None,
    )  # fmt: skip


def start_accelerator(config: TrainConfig) -> Accelerator:
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    accelerator = Accelerator(mixed_precision="bf16" if config.run.bf16 else "no")
    refuse_a_launch_that_started_one_process(accelerator)
    if config.run.bf16 and accelerator.device.type == "cpu" and not cpu_has_bf16():
        notice(accelerator, f"{emulated_bf16('run.bf16')}; set run.bf16=false to train in float32")
    set_seed(config.run.seed)
    return accelerator


def make_model(config: TrainConfig, tokenizer) -> tuple[torch.nn.Module, ExpertAssignment | None]:
    """The model to train, its MoE layers task-guided by the config's expert assignment (none: dense)."""
    model = build_model(config, tokenizer)
    assignment = None if config.mode == "dense" else config.assignment(num_experts(model))
    if assignment is not None:
        apply_task_guidance(model, assignment, ROUTING_STRATEGY[config.mode])
    if config.run.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.model.lora is not None:
        model = add_lora(model, config)
    return model, assignment


def plan_steps(
    config: TrainConfig, encoded: list[Encoded], accelerator: Accelerator
) -> tuple[BatchPlan, int]:
    """The batches of every epoch and the optimizer steps they make (at most `optim.max_steps`)."""
    optim = config.optim
    plan = BatchPlan(encoded, config.data.mixture, optim.tokens_per_batch, optim.epochs, config.run.seed)
    total_steps = len(plan) // (optim.grad_accum * accelerator.num_processes)
    if optim.max_steps is not None:
        total_steps = min(total_steps, optim.max_steps)
    if total_steps == 0:
        raise NekoError(
            f"{config.run.out_dir}: the data make {len(plan)} batch(es), fewer than one step of "
            f"{optim.grad_accum * accelerator.num_processes} (grad_accum x processes): nothing to train"
        )
    return plan, total_steps


def restore(checkpoints: Checkpoints, accelerator: Accelerator, identity: Identity, model, scheduler) -> dict:
    """The latest checkpoint's state (its `step`: where the run continues; none: {}), loaded."""
    state = checkpoints.restore(accelerator, identity.key, model)
    start = state.get("step", 0)
    if state.get("weights_only"):
        rewarm(scheduler, start)
        notice(accelerator, f"continuing a parked run at step {start}: fresh optimizer moments")
    if start == 0:
        notice(
            accelerator,
            f"nothing to resume in {checkpoints.directory.parent}: no checkpoint yet; starting at step 0",
        )
    return state


def refuse_a_launch_that_started_one_process(accelerator: Accelerator) -> None:
    """`accelerate launch --cpu --num_processes N` (or a MULTI_CPU config) starts N processes only
    through MPI; without it, it silently starts one. Its environment gives that case away: the
    rendezvous address of a multi-process launch, but no world size."""
    launched = "ACCELERATE_DYNAMO_BACKEND" in os.environ and "MASTER_ADDR" in os.environ
    if launched and "WORLD_SIZE" not in os.environ and accelerator.num_processes == 1:
        raise NekoError(
            "accelerate launch asked for several processes but started one (it starts CPU processes "
            "only through MPI); use ACCELERATE_USE_CPU=true torchrun --nproc_per_node N -m neko.cli train ..."
        )


def notice(accelerator: Accelerator, line: str) -> None:
    if accelerator.is_main_process:
        print(line, file=sys.stderr, flush=True)


def load_examples(config: TrainConfig, split: str) -> list[Example]:
    """The examples of `data.train` or `data.dev`, each file's `limit` applied; a file without
    examples, an example of a task the run does not train, or one without a reference is an error."""
    from neko.data.formats import read_examples

    examples = []
    sources: list[DataSource] = getattr(config.data, split)
    for index, source in enumerate(sources):
        found = read_examples(source.path, format=source.format, task=source.task)[: source.limit]
        if not found:
            raise NekoError(f"{source.path}: no examples (data.{split}[{index}])")
        for example in found:
            if example.task not in config.tasks:
                raise NekoError(
                    f"{source.path}: example {example.id!r} is of task {example.task!r}, "
                    f"which is not in tasks ({', '.join(config.tasks)})"
                )
        require_references(found, f"data.{split} needs targets", source.path)
        examples += found
    return examples


def load_texts(paths: Sequence[str]) -> list[str]:
    texts = []
    for path in paths:
        found = [line.strip() for line in read_lines(path) if line.strip()]
        if not found:
            raise NekoError(f"{path}: no text (data.text)")
        texts += found
    return texts


def run_tokenizer(
    config: TrainConfig,
    run_dir: RunDir,
    identity: Identity,
    action: str,
    examples: list[Example],
    texts: list[str],
    accelerator: Accelerator,
) -> PreTrainedTokenizerBase:
    """The run's tokenizer, and the run folder claimed: a resumed run reloads the one it recorded;
    a new run trains one (main process), saves it and records its hash in `run.json`."""
    recorded = run_dir.recorded() if action == "resume" else None
    if recorded is not None and recorded.tokenizer is not None:
        if run_dir.saved_tokenizer_hash() != recorded.tokenizer:
            raise NekoError(
                f"{run_dir.tokenizer_dir}: not the tokenizer this run recorded; "
                "pass --overwrite to start over"
            )
        identity.tokenizer = recorded.tokenizer
        return AutoTokenizer.from_pretrained(run_dir.tokenizer_dir)
    if accelerator.is_main_process:
        run_dir.record(identity)  # claimed before the slow part, so a killed run still has its identity
        corpus = texts + [t for e in examples for t in [*e.hypotheses, *e.references]]
        build_tokenizer(config, corpus).save_pretrained(run_dir.tokenizer_dir)
        identity.tokenizer = run_dir.saved_tokenizer_hash()
        run_dir.record(identity)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        identity.tokenizer = run_dir.saved_tokenizer_hash()
    return AutoTokenizer.from_pretrained(run_dir.tokenizer_dir)


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
    return encoded + encode_texts(texts, tokenizer, data.max_source_tokens + data.max_target_tokens)


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
