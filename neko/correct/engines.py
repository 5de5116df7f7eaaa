"""The engines that write corrections, and which one `auto` picks (no torch here: the CLI lists them
in its help and picks one before anything heavy is imported)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from neko.errors import NekoError

ENGINES = ("auto", "copy", "transformers", "onnx")
"""`copy`: copy-aware greedy decoding on torch (`neko.correct.decoding`), the same outputs as greedy
search in fewer forward passes; beam search runs on transformers. `transformers`: its `generate`, the
reference. `onnx`: the model's ONNX export on ONNX Runtime (`neko.correct.onnx_lm`), copy-aware
greedy decoding without torch, which starts in a fraction of the time. `auto`: `pick_engine`."""
DEFAULT_ENGINE = "auto"
ENGINE_HELP = (
    "auto (onnx for a few inputs when the model has model.onnx, else copy), copy (greedy with drafts "
    "copied from the hypotheses), transformers (its generate, the reference) or onnx (ONNX Runtime, no torch)"
)
ONNX_MODEL_FILE = "model.onnx"
"""The onnx engine's model, in a model directory or an export's folder (`neko export --to onnx`)."""
ONNX_MOST_INPUTS = 16
"""`auto` takes the onnx engine for at most this many inputs: it saves the seconds torch takes to
import, and loses to the torch engines on large inputs (no KV cache, every expert on every token).
Measured with `benchmarks/engine_crossover.py` (README): a whole `neko correct` on five-hypothesis
ASR inputs takes about the same time with either engine at 32 inputs, and 1.5x less on onnx at 16."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise NekoError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine


def pick_engine(engine: str, model_dir: Path, inputs: int | None = None, device: str | None = "cpu") -> str:
    """The engine `engine` names; for `auto`: onnx on a folder with model.onnx and no safetensors (an
    ONNX export), or for at most `ONNX_MOST_INPUTS` inputs on the CPU when the directory has
    model.onnx and ONNX Runtime is installed; otherwise copy."""
    if check_engine(engine) != "auto":
        return engine
    has_onnx = (model_dir / ONNX_MODEL_FILE).is_file() and importlib.util.find_spec("onnxruntime") is not None
    if has_onnx and not any(model_dir.glob("*.safetensors")):
        return "onnx"
    few = inputs is not None and inputs <= ONNX_MOST_INPUTS
    return "onnx" if has_onnx and few and device in (None, "auto", "cpu") else "copy"
