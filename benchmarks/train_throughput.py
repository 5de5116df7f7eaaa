"""Training throughput (tokens/s) of task-guided Mixtrals of ~5M and ~20M parameters on this machine.

One step = forward inside task_routing (mixed-task batch), next-token NLL + load-balancing loss,
backward, AdamW. Random tokens: throughput does not depend on the text.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_throughput.py [--threads 1] [--steps 8]
    python benchmarks/train_throughput.py --device cuda --bf16 --batch 64    # on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from neko.moe import ExpertAssignment, apply_task_guidance, load_balancing_loss, task_routing
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


def measure(
    arch: ArchitectureConfig, batch: int, length: int, steps: int, device: torch.device, bf16: bool
) -> tuple[int, float]:
    torch.manual_seed(0)
    model = scratch_model(arch, arch.vocab_size).to(device).train()
    assignment = ExpertAssignment.random(["asr", "st", "ocr", "tec"], arch.num_experts)
    apply_task_guidance(model, assignment)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, arch.vocab_size, (batch, length), device=device)
    task_ids = torch.arange(batch, device=device) % 4
    elapsed = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        with task_routing(task_ids) as routing, torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            logits = model(input_ids=tokens).logits
        losses, mask = next_token_losses(logits, tokens)
        loss = losses.sum() / mask.sum() + 0.01 * load_balancing_loss(routing.records, arch.num_experts)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":  # kernels run asynchronously: wait for them before reading the clock
            torch.cuda.synchronize()
        if step:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - started
    return sum(p.numel() for p in model.parameters()), batch * length * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (as `run.bf16: true` trains)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {}
    for name, arch in SIZES.items():
        params, rate = measure(arch, args.batch, args.length, args.steps, device, args.bf16)
        results[name] = rate
        print(
            f"{name}: {params / 1e6:.1f}M parameters, {rate:,.0f} tokens/s "
            f"(batch {args.batch} x {args.length}, {device}, {'bf16' if args.bf16 else 'fp32'}, "
            f"{args.threads} thread(s))"
        )
    print(f"ratio 5M/20M: {results['5M'] / results['20M']:.2f}")


if __name__ == "__main__":
    main()
