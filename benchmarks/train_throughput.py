"""Training throughput (tokens/s) of task-guided Mixtrals of ~5M and ~20M parameters on this machine,
in fp32 and under bf16 autocast (`run.bf16`), and the ratio of the two.

One step = forward inside task_routing (mixed-task batch), next-token NLL + load-balancing loss,
backward, AdamW. Random tokens: throughput does not depend on the text. Both precisions run in turn,
step by step, so that a load on the machine falls on both alike.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_throughput.py [--threads 1] [--steps 8]
    python benchmarks/train_throughput.py --device cuda --batch 64    # on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from neko.moe import ExpertAssignment, apply_task_guidance, load_balancing_loss, task_routing
from neko.precision import cpu_has_bf16
from neko.train.config import ArchitectureConfig
from neko.train.loop import next_token_losses
from neko.train.model import scratch_model

SIZES = {
    "5M": ArchitectureConfig(
        hidden_size=192,
        num_hidden_layers=4,
        intermediate_size=384,
        num_attention_heads=6,
        num_key_value_heads=2,
        num_experts=4,
        vocab_size=4000,
    ),
    "20M": ArchitectureConfig(
        hidden_size=320,
        num_hidden_layers=6,
        intermediate_size=640,
        num_attention_heads=8,
        num_key_value_heads=4,
        num_experts=4,
        vocab_size=8000,
    ),
}


class Trainer:
    """One model of `arch` and its optimizer, stepped on a fixed random batch."""

    def __init__(self, arch: ArchitectureConfig, batch: int, length: int, device: torch.device, bf16: bool):
        torch.manual_seed(0)
        self.arch, self.device, self.bf16 = arch, device, bf16
        self.model = scratch_model(arch, arch.vocab_size).to(device).train()
        apply_task_guidance(
            self.model, ExpertAssignment.random(["asr", "st", "ocr", "tec"], arch.num_experts)
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.tokens = torch.randint(0, arch.vocab_size, (batch, length), device=device)
        self.task_ids = torch.arange(batch, device=device) % 4
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def step(self) -> float:
        """One training step; its seconds."""
        started = time.perf_counter()
        autocast = torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16)
        with task_routing(self.task_ids) as routing, autocast:
            logits = self.model(input_ids=self.tokens).logits
        losses, mask = next_token_losses(logits, self.tokens)
        loss = losses.sum() / mask.sum() + 0.01 * load_balancing_loss(routing.records, self.arch.num_experts)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.device.type == "cuda":  # kernels run asynchronously: wait for them before reading the clock
            torch.cuda.synchronize()
        return time.perf_counter() - started


def measure(arch: ArchitectureConfig, batch: int, length: int, steps: int, device: torch.device) -> dict:
    """Parameters and tokens/s in fp32 and bf16, their steps interleaved; the first step of each warms
    up allocators and kernels and is not counted."""
    trainers = {
        "fp32": Trainer(arch, batch, length, device, False),
        "bf16": Trainer(arch, batch, length, device, True),
    }
    elapsed = dict.fromkeys(trainers, 0.0)
    for step in range(steps + 1):
        for name, trainer in trainers.items():
            seconds = trainer.step()
            elapsed[name] += seconds if step else 0.0
    rates = {name: batch * length * steps / seconds for name, seconds in elapsed.items()}
    return {"parameters": trainers["fp32"].parameters, **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"batch {args.batch} x {args.length}, {device}, {args.threads} thread(s), {args.steps} steps each")
    if device.type == "cpu":
        print(f"bfloat16 instructions on this CPU (AVX-512 BF16 or AMX): {'yes' if cpu_has_bf16() else 'no'}")
    print("| model | parameters | fp32 tokens/s | bf16 tokens/s | bf16 / fp32 |")
    print("|---|---:|---:|---:|---:|")
    for name, arch in SIZES.items():
        result = measure(arch, args.batch, args.length, args.steps, device)
        print(
            f"| {name} | {result['parameters'] / 1e6:.1f}M | {result['fp32']:,.0f} | {result['bf16']:,.0f} "
            f"| {result['bf16'] / result['fp32']:.2f} |"
        )


if __name__ == "__main__":
    main()
