"""A transformers causal LM on torch as the `Corrector`'s language model (`neko.correct.lm`), and
loading one from a model directory on a device.

Two engines write its continuations: `copy`, copy-aware greedy decoding (`neko.correct.decoding`,
greedy search's outputs in fewer passes), and `transformers`, its `generate` (the reference; beam
search always runs there). Scoring is the same for both: each prompt runs once and the answers
continue from its KV cache (`neko.correct.generation.score_after_prompts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from neko.correct.decoding import copy_generate
from neko.correct.generation import generate, score_after_prompts
from neko.correct.lm import Generated, Hopeless, PromptScores
from neko.errors import NekoError

TORCH_ENGINES = ("copy", "transformers")


class TorchLM:
    """`model` (in eval mode) with the engine that writes its continuations."""

    def __init__(self, model: torch.nn.Module, engine: str = "copy") -> None:
        if engine not in TORCH_ENGINES:
            raise ValueError(f"TorchLM runs the engines {TORCH_ENGINES}, not {engine!r}")
        self.model = model
        self.engine = engine

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        num_beams: int = 1,
        separators: Sequence[int] = (),
        hopeless: Hopeless | None = None,
        **options,
    ) -> list[Generated]:
        """`LanguageModel.generate`; `options`: `pad_id`, `eos_id`, `max_new_tokens`. Only the copy
        engine stops hopeless rows early: `transformers` is the reference, plain `generate`."""
        if self.engine == "copy" and num_beams == 1:
            return copy_generate(self.model, prompts, separators=separators, hopeless=hopeless, **options)
        return generate(self.model, prompts, num_beams=num_beams, **options)

    def score_after_prompts(
        self, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[Sequence[int]]], **options
    ) -> list[PromptScores]:
        """`LanguageModel.score_after_prompts` (`neko.correct.generation.score_after_prompts`)."""
        return score_after_prompts(self.model, prompts, targets, **options)


def load_model(path: Path, device: torch.device, dtype: torch.dtype | str | None = None) -> torch.nn.Module:
    """The causal LM, from safetensors, in eval mode on `device`; `dtype` (a torch dtype or its name)
    None: float32 on CPU (float16 is slow there, bfloat16 fast only on CPUs made for it), the
    checkpoint's own elsewhere."""
    from neko.moe.upcycle import load_checkpoint

    if dtype is None:
        dtype = torch.float32 if device.type == "cpu" else "auto"
    elif isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    return load_checkpoint(path, dtype).to(device).eval()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/"auto": CUDA when available, else CPU; a device this machine lacks is a one-line error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise NekoError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise NekoError(f"device {device!r}: CUDA is not available on this machine; use cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise NekoError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    return resolved
