"""Growing experts: more experts for an MoE LM, each a copy of one it already has, so it can learn a task.

Task-guided routing gives every task an expert of its own (`ExpertAssignment`), so a model whose
experts are all taken must grow one before it can learn a new task. `grow_experts` appends one expert
per entry of `copies`: in every MoE layer the new expert's fused weights (`experts.gate_up_proj`
(E, 2I, H), `experts.down_proj` (E, H, I)) are those of the expert with that index (the donor), and
the router (`gate.weight` (E, H)) gains a row. Attention, norms, embeddings and the other experts are
unchanged, and the expert count in the config follows.

What is preserved, and what is not. The router has no bias, so no row can be kept out of the top-k
for every input, and a grown model computes what it did before only where the new expert is not
picked. Mixtral (and Qwen-MoE with `norm_topk_prob`) renormalise the top-k weights, so an expert
outside the top-k changes nothing; without that renormalisation the larger softmax denominator
shrinks every token's weights. The new router row (`router`) is either

- `"copy"`: the donor's row. The copy ties with its donor: a token whose top-2 held the donor in
  second place gets donor or copy there, identical experts, so its output is unchanged; a token whose
  top-1 was the donor now picks donor and copy, and loses its second expert. With top-1 routing
  nothing changes at all.
- `"mean"` (the default): the mean of the existing rows, so its logit is the mean of the other
  experts' logits: never above the top-1 (top-1 routing is unchanged), and in the top-2 only where
  the scores are lopsided. The task-guided rule forces a task's tokens onto its own expert in
  training whatever the router scores, so the new task does not need the router to find the new
  expert at first; and the copied weights still give it the donor's skill.

Measured on models/neko-tiny (4 experts, top-2) grown by one copy of expert 1 (st's), teacher-forced
over 5 examples of data/asr/dev.jsonl.gz and 5 of data/st/bible-dev.jsonl.gz (`mean` / `copy`): max abs
logit change 6.4 / 7.6 (asr) and 8.8 / 14.6 (st); next-token argmax unchanged at 94.7% / 91.9% (asr)
and 79.5% / 63.3% (st) of positions; mean NLL of the text up by 0.007 / 0.085 (asr) and 0.14 / 0.42
(st) nats. The grown model therefore needs training (the replayed tasks included) before it is
shipped; `mean` disturbs it least.

Noise from N(0, `noise_std`²) (absolute, in weight units), drawn from a generator seeded with `seed`,
is added to the new experts' weights and router rows, so that copies can drift apart from their
donors; the same arguments give the same model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from neko.errors import NekoError, first_line
from neko.io import atomic_folder, read_json, write_json
from neko.moe.upcycle import copy_tokenizer, load_checkpoint, save_model
from neko.resources import NEKO_JSON

ROUTER_INITS = ("mean", "copy")
"""How a new expert's router row starts (see the module docstring)."""

_EXPERT_COUNT_FIELDS = ("num_local_experts", "num_experts")


def grow_experts(
    model: PreTrainedModel,
    copies: Sequence[int],
    noise_std: float = 0.0,
    seed: int = 0,
    router: str = "mean",
) -> PreTrainedModel:
    """Append one expert per entry of `copies` to every MoE layer of `model`, in place (and return it);
    expert `E + i` is a copy of expert `copies[i]` (see the module docstring)."""
    if noise_std < 0:
        raise NekoError(f"noise_std must not be negative, got {noise_std}")
    if router not in ROUTER_INITS:
        raise NekoError(
            f"unknown router initialisation {router!r}; expected one of {', '.join(ROUTER_INITS)}"
        )
    num_experts = expert_count(model.config)
    check_copies(copies, num_experts)
    blocks = list(_moe_blocks(model, num_experts))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in blocks:
            _grow_block(block, list(copies), noise_std, router, generator)
    grown = num_experts + len(copies)
    for name in _EXPERT_COUNT_FIELDS:
        if hasattr(model.config, name):
            setattr(model.config, name, grown)
    if hasattr(model, "num_experts"):
        model.num_experts = grown  # the causal LM's count, used by its load-balancing loss
    return model


def grow_checkpoint(
    src_dir: str | Path,
    out_dir: str | Path,
    copies: Sequence[int],
    noise_std: float = 0.0,
    seed: int = 0,
    router: str = "mean",
) -> Path:
    """Grow the MoE checkpoint in `src_dir` into a new folder `out_dir`, written whole or not at all.

    The weights are read from safetensors and saved in the dtype they are stored in; the tokenizer
    and generation config come along, and a neko.json is kept consistent: its assignment counts the
    new experts, its tasks stay as they are (a new task comes from the training config). Files that
    describe the old model (model card, routing statistics, plots) are not copied.
    """
    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise NekoError(f"{src}: no such model directory")
    if not (src / "config.json").is_file():
        raise NekoError(f"{src}: not a model checkpoint (no config.json)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NekoError(f"{out}: already exists and is not an empty directory")
    num_experts = expert_count(AutoConfig.from_pretrained(src))
    check_copies(copies, num_experts)  # fail before loading weights
    info = _grown_model_info(src, num_experts, num_experts + len(copies))
    model = _load(src)
    grow_experts(model, copies, noise_std, seed, router)
    with atomic_folder(out) as folder:
        save_model(model, folder)
        copy_tokenizer(src, folder)
        if info is not None:
            write_json(folder / NEKO_JSON, info)
    return out


def routed_experts(config: PretrainedConfig) -> int | None:
    """The number of routed experts of an MoE config; None for a dense one."""
    for name in _EXPERT_COUNT_FIELDS:
        count = getattr(config, name, None)
        if isinstance(count, int) and count > 0:
            return count
    return None


def expert_count(config: PretrainedConfig) -> int:
    """The number of routed experts of an MoE config; a one-line error for a dense one."""
    count = routed_experts(config)
    if count is None:
        raise NekoError(f"cannot grow experts: a {config.model_type!r} model has no experts")
    return count


def check_copies(copies: Sequence[int], num_experts: int) -> None:
    """Each entry of `copies` must name one of the `num_experts` experts."""
    if not copies:
        raise NekoError("name at least one expert to copy")
    for index in copies:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_experts:
            raise NekoError(
                f"cannot copy expert {index!r}: the model has {num_experts} experts, 0..{num_experts - 1}"
            )


# ---------------------------------------------------------------------------------------------------


def _moe_blocks(model: nn.Module, num_experts: int) -> Iterator[nn.Module]:
    """The sparse MoE blocks (a `gate` router beside fused `experts`), checked against the count."""
    found = False
    for name, module in model.named_modules():
        experts = getattr(module, "experts", None)
        if getattr(module, "gate", None) is None or not hasattr(experts, "gate_up_proj"):
            continue
        found = True
        shapes = (module.gate.weight.shape[0], experts.gate_up_proj.shape[0], experts.down_proj.shape[0])
        if set(shapes) != {num_experts}:
            raise NekoError(
                f"cannot grow experts: {name} has {shapes[0]} router rows and {shapes[1]} experts, "
                f"the config says {num_experts}"
            )
        yield module
    if not found:
        raise NekoError(
            f"cannot grow experts: the {model.config.model_type!r} model has no MoE layer with fused experts"
        )


def _grow_block(
    block: nn.Module, copies: list[int], noise_std: float, router: str, generator: torch.Generator
) -> None:
    experts, gate = block.experts, block.gate
    for name in ("gate_up_proj", "down_proj"):
        weight = getattr(experts, name)
        setattr(experts, name, _appended(weight, weight[copies], noise_std, generator))
    rows = gate.weight[copies] if router == "copy" else gate.weight.mean(0).expand(len(copies), -1)
    gate.weight = _appended(gate.weight, rows, noise_std, generator)
    experts.num_experts = gate.num_experts = gate.weight.shape[0]


def _appended(
    parameter: nn.Parameter, new: torch.Tensor, noise_std: float, generator: torch.Generator
) -> nn.Parameter:
    """`parameter` with the slices `new` (plus noise) appended along the expert axis."""
    new = new.clone()
    if noise_std > 0:
        noise = torch.randn(new.shape, generator=generator) * noise_std
        new.add_(noise.to(device=new.device, dtype=new.dtype))
    return nn.Parameter(torch.cat([parameter.data, new]), requires_grad=parameter.requires_grad)


def _grown_model_info(src: Path, num_experts: int, grown: int) -> dict | None:
    """The source's neko.json with the assignment over `grown` experts; None when there is none."""
    path = src / NEKO_JSON
    if not path.is_file():
        return None
    info = read_json(path)
    assignment = info.get("assignment") if isinstance(info, dict) else None
    if not isinstance(assignment, dict) or assignment.get("num_experts") != num_experts:
        raise NekoError(
            f"{path}: 'assignment' must be an object whose num_experts is the model's {num_experts}"
        )
    return {**info, "assignment": {**assignment, "num_experts": grown}}


def _load(src: Path) -> PreTrainedModel:
    """The checkpoint from safetensors, in the dtype its weights are stored in."""
    try:
        dtype = _stored_dtype(src)
    except (OSError, SafetensorError) as error:
        raise NekoError(f"{src}: cannot load the model ({first_line(error)})") from None
    return load_checkpoint(src, dtype)


def _stored_dtype(src: Path) -> torch.dtype:
    single = src / "model.safetensors"
    if single.is_file():
        path = single
    elif (src / "model.safetensors.index.json").is_file():
        weight_map = read_json(src / "model.safetensors.index.json").get("weight_map") or {}
        if not weight_map:
            raise NekoError(f"{src / 'model.safetensors.index.json'}: empty weight_map")
        path = src / next(iter(weight_map.values()))
    else:
        raise NekoError(f"{src}: no model.safetensors (weights are read as safetensors only)")
    with safe_open(path, "pt") as weights:
        first = next(iter(weights.keys()), None)
        if first is None:
            raise NekoError(f"{path}: holds no tensors")
        return weights.get_tensor(first).dtype
