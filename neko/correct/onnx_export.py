"""Export a neko model directory to ONNX, which ONNX Runtime runs without torch or transformers.

The export is a folder: `model.onnx` and the model directory's `config.json`, `tokenizer.json`,
`tokenizer_config.json` and `neko.json`, so that a runtime needs nothing else (the `onnx` engine,
`neko.correct.onnx_lm`). Exported into the model directory itself, only `model.onnx` is written,
beside the weights. Its metadata holds the digest of the weights it was made from, so that the engine
refuses an export the weights have moved on from. The graph takes
`input_ids` and `attention_mask` (int64, `(batch, sequence)`, both dynamic; rows left-padded, as neko
batches them) and `logit_index` (int64, `(batch, kept)`: per row, the positions whose logits are
wanted) and returns `logits` (float32, `(batch, kept, vocab)`): the vocabulary projection is a large
share of a small model's work, and decoding or scoring needs it at a few positions only. Position ids
are computed in the graph from the mask, as `neko.correct.generation.left_pad` does, so a row gives
the same logits whatever it is batched with. There is no KV cache: each decoding step runs the whole
sequence again, which costs little for a one-line input (a prompt of tens of tokens) and much for
long batches.

Mixtral's experts cannot be exported as transformers runs them: its default implementation calls a
grouped matrix product that has no ONNX function, and the eager one loops over the experts that were
hit, control flow that depends on the data and that `torch.export` refuses. While exporting, every
experts module runs `dense_experts` instead: every expert on every token, weighted by the router's
top-k weights (zero for the experts a token was not routed to). The sum is the same; the experts cost
num_experts / top_k times their sparse compute, little for neko's small models. The task-guided
routing needs nothing at inference: every token takes the gate's plain top-k, which the graph keeps.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
from neko.correct.onnx_lm import INPUTS, MODEL_FILE, OUTPUT, WEIGHTS_KEY, weights_digest
from neko.correct.torch_lm import load_model
from neko.errors import NekoError
from neko.io import atomic_folder, read_json_object
from neko.resources import NEKO_JSON

SUPPORTED = ("mixtral", "mistral")
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", NEKO_JSON)
"""What the export copies from the model directory next to `MODEL_FILE`."""
EXTRA_HINT = "pip install 'neko[onnx]' (onnx and onnxscript)"
OPSET = 20


def require_onnx(*modules: str) -> None:
    """A one-line error naming the `onnx` extra when one of `modules` is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise NekoError(f"ONNX needs the {module} package, which is not installed: {EXTRA_HINT}")


def export_onnx(model: str | Path | None, out: str | Path) -> Path:
    """Write the model directory `model` (None: the default model) as an ONNX export in the folder
    `out` (see the module docstring); returns the path of `model.onnx`. `out` may be missing, empty or
    an earlier export (replaced whole, so no stale file of it remains), or the model directory itself
    (then only `model.onnx` is written); a reader never sees half an export."""
    require_onnx("onnx", "onnxscript")
    path = resolve_model_dir(model)
    check_model_files(path)
    read_model_info(path)
    config = read_json_object(path / "config.json")
    if config.get("model_type") not in SUPPORTED:
        raise NekoError(
            f"{path}: cannot export model type {config.get('model_type')!r} to ONNX; "
            f"supported: {', '.join(SUPPORTED)}"
        )
    out = Path(out)
    if out.resolve() == path.resolve():
        staging_file = out / f".{MODEL_FILE}.tmp"
        try:
            _export_graph(path, staging_file)
            os.replace(staging_file, out / MODEL_FILE)
        finally:
            staging_file.unlink(missing_ok=True)
        return out / MODEL_FILE
    _check_out(out)
    with atomic_folder(out, replace=True) as staging:
        _export_graph(path, staging / MODEL_FILE)
        for name in COPIED:
            shutil.copyfile(path / name, staging / name)
    return out / MODEL_FILE


def _check_out(out: Path) -> None:
    """`out` must be missing, an empty folder, or a folder holding only an earlier export's files."""
    if out.exists() and not out.is_dir():
        raise NekoError(f"{out}: is a file; an ONNX export is written to a folder")
    if out.is_dir():
        for entry in sorted(out.iterdir()):
            if entry.name not in (MODEL_FILE, f"{MODEL_FILE}.data", *COPIED):
                raise NekoError(
                    f"{out}: holds {entry.name}, which is not part of an ONNX export; "
                    "choose an empty or new folder"
                )


def _export_graph(path: Path, destination: Path) -> None:
    model = load_model(path, torch.device("cpu"), torch.float32)
    example = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 0, 5, 6, 7]], dtype=torch.long)
    example_mask = (example != 0).long()
    example_index = torch.tensor([[4, 5], [3, 5]], dtype=torch.long)
    batch, sequence, kept = torch.export.Dim("batch"), torch.export.Dim("sequence"), torch.export.Dim("kept")
    dynamic = {
        "input_ids": {0: batch, 1: sequence},
        "attention_mask": {0: batch, 1: sequence},
        "logit_index": {0: batch, 1: kept},
    }
    with dense_experts(model), _quiet_exporter():
        program = torch.onnx.export(
            LogitsOfMask(model).eval(),
            (example, example_mask, example_index),
            dynamo=True,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            verbose=False,
        )
    program.model.metadata_props[WEIGHTS_KEY] = weights_digest(path)
    program.save(str(destination))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's notes on its own internals: optional torchvision operators it skips, axis
    renaming, pytree deprecations."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        registration.setLevel(level)


class LogitsOfMask(torch.nn.Module):
    """The causal LM as `(input_ids, attention_mask, logit_index) -> logits` at the indexed positions,
    its position ids from the mask."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logit_index: torch.Tensor
    ) -> torch.Tensor:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.model.base_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        index = logit_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return self.model.get_output_embeddings()(hidden.gather(1, index))


def dense_forward(
    self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """`MixtralExperts.forward` without data-dependent control flow: `hidden_states` `(tokens, hidden)`
    through every expert (`gate_up_proj` `(experts, 2 * ffn, hidden)`, `down_proj` `(experts, hidden,
    ffn)`), summed with the top-k weights scattered into a `(tokens, experts)` matrix."""
    weights = torch.zeros(
        hidden_states.shape[0], self.num_experts, dtype=top_k_weights.dtype, device=hidden_states.device
    ).scatter(1, top_k_index, top_k_weights)
    gate, up = torch.einsum("th,efh->tef", hidden_states, self.gate_up_proj).chunk(2, dim=-1)
    outputs = torch.einsum("tef,ehf->teh", self.act_fn(gate) * up, self.down_proj)
    return torch.einsum("teh,te->th", outputs, weights.to(outputs.dtype))


@contextmanager
def dense_experts(model: torch.nn.Module) -> Iterator[None]:
    """Run every Mixtral experts module of `model` with `dense_forward` inside the block (only this
    model's modules; the class is left alone)."""
    from transformers.models.mixtral.modeling_mixtral import MixtralExperts

    patched = [module for module in model.modules() if isinstance(module, MixtralExperts)]
    for module in patched:
        module.forward = types.MethodType(dense_forward, module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
