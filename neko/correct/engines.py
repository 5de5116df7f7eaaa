"""The engines that write corrections, and which one `auto` picks (no torch here: the CLI lists them
in its help and picks one before anything heavy is imported)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from neko.errors import NekoError
from neko.io import read_json_object

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
DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_HELP = (
    "the torch engines' weights: auto (float32 on the CPU, the checkpoint's on a GPU), float32, bfloat16 "
    "(faster on CPUs with AVX-512 BF16 or AMX, several times slower on others; corrections may differ "
    "slightly) or float16"
)
"""Measured with neko-tiny on this project's 2-core AMD EPYC (AVX-512 BF16), 320 ASR test examples,
batch 64 (`benchmarks/correct_throughput.py --bf16`, README): bfloat16 on the copy engine corrected
1.34-1.37x faster than float32, 316-319 of 320 corrections the same, WER within 0.03."""
ONNX_MODEL_FILE = "model.onnx"
"""The onnx engine's model, in a model directory or an export's folder (`neko export --to onnx`)."""
ONNX_MOST_INPUTS = 16
"""`auto` takes the onnx engine for at most this many inputs of a model with up to 4 experts, and
proportionally fewer beyond (`onnx_most_inputs`): it saves the seconds torch takes to import, and
loses to the torch engines on large inputs (no KV cache, every expert on every token). Measured with
`benchmarks/engine_crossover.py` (README): a whole `neko correct` on five-hypothesis ASR inputs takes
about the same time with either engine at 32 inputs on neko-tiny (4 experts) and at 8 on neko-small
(8 experts, wider layers)."""


def onnx_most_inputs(model_dir: Path) -> int:
    """How many inputs `auto` gives the onnx engine for the model of `model_dir`: `ONNX_MOST_INPUTS`
    scaled down by its experts beyond 4, which the export runs on every token."""
    config = model_dir / "config.json"
    experts = read_json_object(config).get("num_local_experts", 4) if config.is_file() else 4
    return max(1, ONNX_MOST_INPUTS * 4 // max(4, int(experts)))


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise NekoError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine


def check_dtype(dtype: str, engine: str) -> str:
    """`dtype` is one neko knows and, when not auto, one the engine can use (the onnx export is float32)."""
    if dtype not in DTYPES:
        raise NekoError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if dtype != "auto" and engine == "onnx":
        raise NekoError(f"the onnx engine runs its float32 export; --dtype {dtype} needs --engine copy")
    return dtype


def pick_engine(engine: str, model_dir: Path, inputs: int | None = None, device: str | None = "cpu") -> str:
    """The engine `engine` names; for `auto`: onnx on a folder with model.onnx and no safetensors (an
    ONNX export), or for at most `onnx_most_inputs` inputs on the CPU when the directory has
    model.onnx and ONNX Runtime is installed; otherwise copy."""
    if check_engine(engine) != "auto":
        return engine
    has_onnx = (model_dir / ONNX_MODEL_FILE).is_file() and importlib.util.find_spec("onnxruntime") is not None
    if has_onnx and not any(model_dir.glob("*.safetensors")):
        return "onnx"
    few = inputs is not None and inputs <= onnx_most_inputs(model_dir)
    return "onnx" if has_onnx and few and device in (None, "auto", "cpu") else "copy"
