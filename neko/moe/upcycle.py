"""Sparse upcycling: a Mixture-of-Experts LM made from a dense one (Komatsuzaki et al., 2023).

Every decoder layer's MLP becomes `num_experts` copies of itself behind a fresh router; attention,
norms, embeddings and the LM head are copied unchanged. With noiseless copies the MoE computes exactly
what the dense model did, whatever the router picks: each token's output is a convex combination of
identical experts. Training then lets the experts drift apart (faster with `noise_std > 0`).

Source architecture -> MoE family (all transformers 5.x, fused 3-D expert parameters):

- `llama`, `mistral` -> Mixtral. Experts `experts.gate_up_proj` (E, 2I, H) hold the dense gate then up
  projection, `experts.down_proj` (E, H, I) the down projection; router `gate.weight` (E, H). Mixtral
  renormalises the top-k router weights, so identical experts reproduce the dense MLP. Llama variants
  with `attention_bias` or `mlp_bias` are refused: Mixtral has no biases.
- `qwen2` -> Qwen2-MoE (Mixtral has no q/k/v biases, which Qwen2 needs). Qwen2-MoE adds a shared expert
  gated by `sigmoid(shared_expert_gate(x))`; no config switch turns it off and a sigmoid never reaches
  0, so it is disabled by giving it width 0 (`shared_expert_intermediate_size=0`): it adds exactly zero
  and holds no parameters. `norm_topk_prob=True` so that top-k weights sum to one, and the dense
  model's `layer_types` (sliding-window layers) are kept as they are.
- `qwen3` -> Qwen3-MoE (no shared expert; q/k norms copied). Qwen3-MoE applies one attention window to
  every layer, so a Qwen3 model mixing sliding and full attention layers is refused.

Routers are drawn from N(0, `router_init_std`²) and expert noise from N(0, `noise_std`²) (absolute, in
weight units), both from a generator seeded with `seed`: the same arguments give the same model.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from neko.errors import NekoError, first_line
from neko.io import atomic_folder, give_usual_mode

# Fields every supported dense config shares with its MoE counterpart, copied when present.
_SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "use_cache",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "rope_parameters",
    "attention_dropout",
)

TOKENIZER_FILES = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "chat_template*",
)
"""Name patterns of the tokenizer files a checkpoint folder may hold, copied by `copy_tokenizer`."""


@dataclass(frozen=True)
class _Family:
    """How one dense architecture maps onto an MoE one."""

    moe_type: str
    extra_fields: tuple[str, ...]  # further config fields copied from the dense config


_FAMILIES = {
    "llama": _Family("mixtral", ()),
    "mistral": _Family("mixtral", ("sliding_window",)),
    "qwen2": _Family(
        "qwen2_moe", ("use_sliding_window", "sliding_window", "max_window_layers", "layer_types")
    ),
    "qwen3": _Family("qwen3_moe", ("attention_bias", "use_sliding_window", "sliding_window")),
}
SUPPORTED_ARCHITECTURES = tuple(_FAMILIES)


def moe_config(
    dense_config: PretrainedConfig, num_experts: int, num_experts_per_tok: int = 2
) -> PretrainedConfig:
    """The config of the MoE that upcycling `dense_config` makes (no weights involved)."""
    _check_counts(num_experts, num_experts_per_tok)
    model_type = getattr(dense_config, "model_type", None)
    family = _FAMILIES.get(model_type)
    if family is None:
        raise NekoError(
            f"cannot upcycle a {model_type!r} model; supported architectures: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    _check_compatible(dense_config)
    fields: dict[str, Any] = {
        name: getattr(dense_config, name)
        for name in (*_SHARED_FIELDS, *family.extra_fields)
        if hasattr(dense_config, name)
    }
    fields["num_experts_per_tok"] = num_experts_per_tok
    if family.moe_type == "mixtral":
        fields.update(num_local_experts=num_experts, router_jitter_noise=0.0)
    else:
        fields.update(
            num_experts=num_experts,
            moe_intermediate_size=dense_config.intermediate_size,
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[],
        )
    if family.moe_type == "qwen2_moe":
        fields.update(shared_expert_intermediate_size=0, qkv_bias=True)
    dtype = getattr(dense_config, "dtype", None)
    if dtype is not None:
        fields["dtype"] = dtype
    return AutoConfig.for_model(family.moe_type, **fields)


def upcycle(
    dense_model: PreTrainedModel,
    num_experts: int,
    num_experts_per_tok: int = 2,
    noise_std: float = 0.0,
    router_init_std: float = 0.02,
    seed: int = 0,
) -> PreTrainedModel:
    """A Mixtral-family MoE whose experts are copies of `dense_model`'s MLPs (see the module docstring).

    The result has the dense model's dtype, device, attention implementation and train/eval mode.
    """
    if noise_std < 0 or router_init_std < 0:
        raise NekoError("noise_std and router_init_std must not be negative")
    config = moe_config(dense_model.config, num_experts, num_experts_per_tok)
    dtype = next(dense_model.parameters()).dtype
    device = next(dense_model.parameters()).device
    config._attn_implementation = dense_model.config._attn_implementation
    with _skip_weight_init():
        moe = AutoModelForCausalLM.from_config(config, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        _copy_weights(dense_model, moe, config, noise_std, router_init_std, generator)
    moe.generation_config = _copy_generation_config(dense_model, moe)
    return moe.to(device).train(dense_model.training)


def load_checkpoint(path: str | Path, dtype: torch.dtype | str = "auto") -> PreTrainedModel:
    """The causal LM of checkpoint folder `path`, from safetensors only; a one-line error when it
    cannot be loaded, or when its weights lack a tensor the model has (transformers would fill it with
    random numbers and carry on). transformers' own loading report and progress bar stay quiet: the
    error says what is wrong."""
    from safetensors import SafetensorError

    try:
        with _quiet_transformers():
            model, info = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, output_loading_info=True
            )
    except RuntimeError:
        raise NekoError(
            f"{path}: cannot load the model (its weights do not fit its config.json: a tensor is "
            "missing or of another shape)"
        ) from None
    except (OSError, ValueError, SafetensorError) as error:
        raise NekoError(f"{path}: cannot load the model ({first_line(error)})") from None
    missing = sorted(info["missing_keys"]) + [name for name, *_ in info["mismatched_keys"]]
    if missing:
        raise NekoError(
            f"{path}: cannot load the model ({len(missing)} of its tensors are missing from the weights "
            f"or of another shape; first: {missing[0]})"
        )
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as transformers_logging

    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def upcycle_checkpoint(
    src_dir: str | Path,
    dst_dir: str | Path,
    num_experts: int,
    num_experts_per_tok: int = 2,
    noise_std: float = 0.0,
    router_init_std: float = 0.02,
    seed: int = 0,
) -> Path:
    """Upcycle the dense checkpoint in `src_dir` into `dst_dir` (safetensors), tokenizer included."""
    src, dst = Path(src_dir), Path(dst_dir)
    if not (src / "config.json").is_file():
        raise NekoError(f"{src}: not a model checkpoint (no config.json)")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise NekoError(f"{dst}: already exists and is not an empty directory")
    moe_config(
        AutoConfig.from_pretrained(src), num_experts, num_experts_per_tok
    )  # fail before loading weights
    dense = load_checkpoint(src)
    moe = upcycle(dense, num_experts, num_experts_per_tok, noise_std, router_init_std, seed)
    with atomic_folder(dst) as folder:
        save_model(moe, folder)
        copy_tokenizer(src, folder)
    return dst


def save_model(
    model: PreTrainedModel, folder: Path, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """`model.save_pretrained` into `folder` as safetensors, the weights given the mode a new file gets
    (transformers writes them 0600)."""
    model.save_pretrained(folder, state_dict=state_dict, safe_serialization=True)
    give_usual_mode(*folder.glob("*.safetensors"))


def copy_tokenizer(src: Path, dst: Path) -> None:
    """Copy the tokenizer files of checkpoint folder `src` into `dst`."""
    for pattern in TOKENIZER_FILES:
        for path in src.glob(pattern):
            if path.is_file():
                shutil.copy2(path, dst / path.name)


# ---------------------------------------------------------------------------------------------------


def _check_counts(num_experts: int, num_experts_per_tok: int) -> None:
    if num_experts < 1:
        raise NekoError(f"num_experts must be at least 1, got {num_experts}")
    if not 1 <= num_experts_per_tok <= num_experts:
        raise NekoError(
            f"num_experts_per_tok must be between 1 and num_experts ({num_experts}), "
            f"got {num_experts_per_tok}"
        )


def _check_compatible(config: PretrainedConfig) -> None:
    """Refuse dense variants the MoE family cannot reproduce."""
    for flag in ("attention_bias", "mlp_bias"):
        if config.model_type == "llama" and getattr(config, flag, False):
            raise NekoError(f"cannot upcycle a llama model with {flag}=True: Mixtral layers have no biases")
    if config.model_type == "qwen3":
        layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
        if len(layer_types) > 1:
            raise NekoError(
                "cannot upcycle a qwen3 model mixing sliding-window and full attention layers: Qwen3-MoE "
                "uses one attention window for every layer"
            )
        if layer_types == {"sliding_attention"} and not getattr(config, "use_sliding_window", False):
            raise NekoError("qwen3 config has sliding-window layers but use_sliding_window=False")


def _copy_weights(
    dense: PreTrainedModel,
    moe: PreTrainedModel,
    config: PretrainedConfig,
    noise_std: float,
    router_init_std: float,
    generator: torch.Generator,
) -> None:
    source = dense.state_dict()
    target = moe.state_dict()
    filled: set[str] = set()
    used: set[str] = set()
    for name, tensor in target.items():
        if name in source:
            if source[name].shape != tensor.shape:
                raise NekoError(
                    f"cannot upcycle: {name} has shape {tuple(source[name].shape)} in the dense "
                    f"model but {tuple(tensor.shape)} in the MoE"
                )
            tensor.copy_(source[name])
            filled.add(name)
            used.add(name)
    num_experts = moe.config.num_experts
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}.mlp."
        names = [f"{prefix}{projection}_proj.weight" for projection in ("gate", "up", "down")]
        missing = [name for name in names if name not in source]
        if missing:
            raise NekoError(f"cannot upcycle: the dense model has no {missing[0]}")
        gate, up, down = (source[name] for name in names)
        used.update(names)
        gate_up = torch.cat([gate, up], dim=0)
        _fill_experts(target[f"{prefix}experts.gate_up_proj"], gate_up, num_experts, noise_std, generator)
        _fill_experts(target[f"{prefix}experts.down_proj"], down, num_experts, noise_std, generator)
        router = target[f"{prefix}gate.weight"]
        router.copy_(torch.randn(router.shape, generator=generator) * router_init_std)
        filled.update({f"{prefix}experts.gate_up_proj", f"{prefix}experts.down_proj", f"{prefix}gate.weight"})
        for name, tensor in target.items():
            if name.startswith((f"{prefix}shared_expert.", f"{prefix}shared_expert_gate.")):
                tensor.zero_()  # Qwen2-MoE's shared expert, of width 0: it adds nothing
                filled.add(name)
    unfilled = sorted(set(target) - filled)
    if unfilled:
        raise NekoError(f"cannot upcycle: nothing in the dense model maps onto {unfilled[0]}")
    unused = sorted(set(source) - used)
    if unused:
        raise NekoError(f"cannot upcycle: the MoE has no place for the dense model's {unused[0]}")


def _fill_experts(
    experts: torch.Tensor,
    weight: torch.Tensor,
    num_experts: int,
    noise_std: float,
    generator: torch.Generator,
) -> None:
    """Set each of the `num_experts` slices of `experts` to `weight`, plus independent Gaussian noise."""
    experts.copy_(weight.unsqueeze(0).expand(num_experts, *weight.shape))
    if noise_std > 0:
        noise = torch.randn(experts.shape, generator=generator) * noise_std
        experts.add_(noise.to(device=experts.device, dtype=experts.dtype))


def _copy_generation_config(dense: PreTrainedModel, moe: PreTrainedModel) -> Any:
    generation_config = getattr(dense, "generation_config", None)
    return moe.generation_config if generation_config is None else generation_config


@contextlib.contextmanager
def _skip_weight_init() -> Iterator[None]:
    """Build the MoE without random initialisation: every weight is overwritten anyway."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        yield
        return
    with no_init_weights():
        yield
