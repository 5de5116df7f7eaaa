"""The model a run trains: built from scratch, loaded from a local checkpoint, or upcycled from a dense
one; optionally wrapped with LoRA adapters. And the way a finished model is saved for `neko correct`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from neko.correct.model_dir import ModelInfo, write_model_info
from neko.moe.assignment import ExpertAssignment
from neko.moe.grow import routed_experts
from neko.moe.upcycle import load_checkpoint, save_model, upcycle
from neko.tasks import BUILTIN_TASKS, get_task
from neko.train.config import ArchitectureConfig, TrainConfig
from neko.train.tokenizer import add_markers, train_tokenizer

BUILTIN_NAMES = {task.name for task in BUILTIN_TASKS}


def build_tokenizer(config: TrainConfig, texts: Iterable[str]) -> PreTrainedTokenizerBase:
    """A new BPE tokenizer for scratch models; the checkpoint's own, with neko's markers, otherwise."""
    if config.model.source == "scratch":
        return train_tokenizer(texts, config.model.architecture.vocab_size, config.tasks)
    tokenizer = AutoTokenizer.from_pretrained(config.model.path)
    add_markers(tokenizer, config.tasks)
    return tokenizer


def build_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model to train, with embeddings sized for `tokenizer`."""
    source = config.model.source
    if source == "scratch":
        model = scratch_model(config.model.architecture, len(tokenizer), dense=config.mode == "dense")
    elif source == "pretrained":
        model = load_checkpoint(config.model.path, torch.float32)
    else:
        dense = load_checkpoint(config.model.path, torch.float32)
        model = upcycle(dense, num_experts=config.model.upcycle_experts, seed=config.run.seed)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def scratch_model(arch: ArchitectureConfig, vocab_size: int, dense: bool = False) -> PreTrainedModel:
    """A Mixtral of this shape, or (`dense`) the Mistral with the same active parameters per token:
    its MLP is `experts_per_token` times an expert's width."""
    shared = dict(
        vocab_size=vocab_size,
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        max_position_embeddings=arch.max_position_embeddings,
        tie_word_embeddings=arch.tie_word_embeddings,
        rope_theta=arch.rope_theta,
        sliding_window=None,
    )
    if dense:
        return MistralForCausalLM(
            MistralConfig(intermediate_size=arch.intermediate_size * arch.experts_per_token, **shared)
        )
    config = MixtralConfig(
        intermediate_size=arch.intermediate_size,
        num_local_experts=arch.num_experts,
        num_experts_per_tok=arch.experts_per_token,
        output_router_logits=False,
        **shared,
    )
    return MixtralForCausalLM(config)


def num_experts(model: torch.nn.Module) -> int | None:
    """The model's number of routed experts; None for a dense model."""
    return routed_experts(model.config)


def add_lora(model: PreTrainedModel, config: TrainConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = config.model.lora
    targets = [p for p in lora.target_parameters if any(n.endswith(p) for n, _ in model.named_parameters())]
    return get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            target_parameters=targets or None,
        ),
    )


def save_corrector(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    config: TrainConfig,
    assignment: ExpertAssignment | None,
) -> Path:
    """Write a model directory `neko correct` loads: HF weights (LoRA merged), tokenizer, neko.json."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    dtype = getattr(torch, config.run.save_dtype)
    state = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        # The cast copies break the tie that save_pretrained looks for: the output matrix would be
        # stored again (3M parameters of neko-small); loading ties it back to the embeddings.
        state.pop("lm_head.weight", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, out_dir, state)
    # save_pretrained records the dtype of the model's parameters; engines loading "auto" read the file's
    model.config.dtype = config.run.save_dtype
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_model_info(out_dir, model_info(config, assignment))
    return out_dir


def model_info(config: TrainConfig, assignment: ExpertAssignment | None) -> ModelInfo:
    """What `neko.json` records about this run's model."""
    return ModelInfo(
        tasks=list(config.tasks),
        assignment=assignment,
        strategy=config.mode,
        prompt_style=config.data.prompt_style,
        max_source_tokens=config.data.max_source_tokens,
        max_new_tokens=config.data.max_target_tokens,
        max_hypotheses=config.data.max_hypotheses,
        custom_tasks=[vars(get_task(t)) for t in config.tasks if t not in BUILTIN_NAMES],
    )
