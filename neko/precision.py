"""Whether this machine computes in bfloat16 natively: training's `run.bf16` and correction's
`--dtype bfloat16` are faster only where it does, and several times slower where it does not."""

from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 matrix products natively on this CPU (AVX-512 BF16 or AMX).
    Without it bfloat16 still works, emulated, at a fraction of float32's speed: on an AVX2-only AMD
    EPYC, training 0.20-0.23x and the copy engine's corrections 0.25x (README)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def emulated_bf16(setting: str) -> str:
    """The line that says `setting` asks for bfloat16 on a CPU without its instructions."""
    return (
        f"{setting}: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so bfloat16 is "
        "emulated and several times slower than float32"
    )
