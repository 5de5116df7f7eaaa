"""A tiny training config (a Mixtral of 2 layers x 4 experts on 160 mixed examples) for training tests,
and ways to watch what a run does from outside the trainer: optimizer steps and expert calls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from torch.optim.optimizer import register_optimizer_step_post_hook

FIXTURE = Path(__file__).parent / "fixtures" / "train" / "mixed.jsonl"
TASKS = ["asr", "ocr", "tec"]
TINY = {
    "tasks": TASKS,
    "model": {
        "source": "scratch",
        "architecture": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "num_experts": 4,
            "vocab_size": 400,
        },
    },
    "data": {"train": [str(FIXTURE)]},
    "optim": {
        "lr": 3e-3,
        "betas": [0.9, 0.95],
        "warmup_steps": 2,
        "epochs": 20,
        "max_steps": 20,
        "tokens_per_batch": 600,
    },
    "run": {"log_every": 1, "save_every": 1000, "threads": 1},
}


def write_config(directory: Path, name: str = "config.yaml", *, base: dict = TINY, **changes) -> Path:
    """`base` (TINY) with `changes` (`optim__max_steps=5` sets optim.max_steps), its out_dir
    `directory/run`."""
    config = yaml.safe_load(yaml.safe_dump(base))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    config.setdefault("run", {})["out_dir"] = str(directory / "run")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(config))
    return path


class Stop(Exception):
    """Raised from an optimizer hook to stop a run as a kill would, between two steps."""


@contextlib.contextmanager
def counted_optimizer_steps(stop_after: int | None = None) -> Iterator[list[int]]:
    """Count every optimizer step taken inside the block (any torch optimizer, however wrapped);
    with `stop_after`, raise `Stop` right after that many steps."""
    count = [0]

    def after_step(optimizer, args, kwargs) -> None:
        count[0] += 1
        if stop_after is not None and count[0] >= stop_after:
            raise Stop(f"stopped after {count[0]} optimizer steps")

    handle = register_optimizer_step_post_hook(after_step)
    try:
        yield count
    finally:
        handle.remove()


@contextlib.contextmanager
def expert_calls(class_suffix: str = "Experts") -> Iterator[list[tuple[int, torch.Tensor]]]:
    """Record every call of an MoE expert module inside the block: (module id, the expert indices it
    was given). The indices are the routing decision actually applied, task guidance included,
    whatever hooks made it."""
    calls: list[tuple[int, torch.Tensor]] = []

    def before(module, args) -> None:
        if type(module).__name__.endswith(class_suffix) and len(args) >= 2:
            calls.append((id(module), args[1].detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(before)
    try:
        yield calls
    finally:
        handle.remove()
