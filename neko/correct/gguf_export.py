"""Export a neko model directory to GGUF, the file format of llama.cpp and the engines built on it.

A neko model is a stock Mixtral (or, dense, a Mistral), which llama.cpp runs as its `llama`
architecture, experts included. The mapping is the one of llama.cpp's own converter
(`convert_hf_to_gguf.py`): per layer the router becomes `ffn_gate_inp`, the experts' gate, up and down
projections are stacked into `ffn_{gate,up,down}_exps`, and the rows of the query and key
projections are permuted from the rotate-half RoPE layout of transformers to GGML's interleaved one.
The byte-level BPE is declared as `gpt2` with the `gpt-2` pre-tokenizer (the split regex of the
tokenizers `ByteLevel` pre-tokenizer); neko's markers are control tokens. Weights stay float32 (the
models are small; llama.cpp's `llama-quantize` makes smaller files from this one).

The task-guided routing needs nothing at inference: every token takes the gate's plain top-2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
from neko.correct.tokenizer import config_token
from neko.errors import NekoError
from neko.io import check_writable, is_stream, read_json_object

ARCHITECTURE = "llama"
SUPPORTED = ("mixtral", "mistral")
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3
"""llama.cpp's token types (`gguf.TokenType.NORMAL`, `.CONTROL`)."""


def permute_rope(weights: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a query or key projection from transformers' rotate-half RoPE layout to GGML's
    interleaved pairs (llama.cpp's `LlamaModel.permute`)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def export_gguf(model: str | Path | None, out: str | Path) -> Path:
    """Write the model directory `model` (None: the default model) as the GGUF file `out`, at once
    (a reader never sees half a file); returns `out`."""
    import gguf

    from neko.correct.torch_lm import load_model

    path = resolve_model_dir(model)
    check_model_files(path)
    read_model_info(path)
    out = _check_out(Path(out), path)
    config = read_json_object(path / "config.json")
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise NekoError(
            f"{path}: cannot export model type {model_type!r} to GGUF; supported: {', '.join(SUPPORTED)}"
        )
    import torch

    hf_model = load_model(path, torch.device("cpu"), torch.float32)
    state = {name: tensor.detach().numpy() for name, tensor in hf_model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(temporary), ARCHITECTURE)
    try:
        _write_metadata(writer, hf_model.config, path.name)
        _write_tokenizer(writer, path)
        for name, array in _tensors(state, hf_model.config):
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(temporary, out)
    finally:
        if temporary.exists():
            temporary.unlink()
    return out


def _check_out(out: Path, model_dir: Path) -> Path:
    """`out` as a regular file neko can write that is not one of the model's own files, or a one-line
    error before the export's work."""
    if is_stream(out):
        raise NekoError(f"{out}: is a device or pipe; a GGUF file is written to a regular file")
    target = check_writable(out)
    if target.exists() and target.parent == model_dir.resolve():
        raise NekoError(f"{out}: is a file of the model {model_dir}; write the GGUF file elsewhere")
    return out


def _write_metadata(writer, config, name: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    if getattr(config, "num_local_experts", None):
        writer.add_expert_count(config.num_local_experts)
        writer.add_expert_used_count(config.num_experts_per_tok)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)


def _write_tokenizer(writer, path: Path) -> None:
    """Vocabulary, merges and special ids from `tokenizer.json`, whose model must be a byte-level BPE."""
    where = path / "tokenizer.json"
    data = read_json_object(where)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or (data.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise NekoError(f"{where}: GGUF export needs a byte-level BPE tokenizer")
    try:
        vocab: dict[str, int] = dict(model["vocab"])
        special = {token["content"]: token["id"] for token in data.get("added_tokens", [])}
    except (KeyError, TypeError, ValueError) as error:
        raise NekoError(f"{where}: not a tokenizer.json of the tokenizers library ({error!r})") from None
    vocab.update(special)
    size = max(vocab.values()) + 1
    if sorted(vocab.values()) != list(range(size)):
        raise NekoError(f"{where}: token ids are not 0..{size - 1} without gaps")
    tokens = [""] * size
    for token, index in vocab.items():
        tokens[index] = token
    special_ids = set(special.values())
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([TOKEN_CONTROL if i in special_ids else TOKEN_NORMAL for i in range(size)])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    config = read_json_object(path / "tokenizer_config.json")
    for key, add in (("eos_token", writer.add_eos_token_id), ("pad_token", writer.add_pad_token_id)):
        token = config_token(config, key)
        if token in vocab:
            add(vocab[token])
    writer.add_add_bos_token(False)


def _tensors(state: dict[str, np.ndarray], config):
    """(GGUF name, array) of every weight, in llama.cpp's names and layouts."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    yield "token_embd.weight", state["model.embed_tokens.weight"]
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        block = f"blk.{i}."
        yield block + "attn_norm.weight", state[layer + "input_layernorm.weight"]
        yield block + "attn_q.weight", permute_rope(state[layer + "self_attn.q_proj.weight"], heads)
        yield block + "attn_k.weight", permute_rope(state[layer + "self_attn.k_proj.weight"], kv_heads)
        yield block + "attn_v.weight", state[layer + "self_attn.v_proj.weight"]
        yield block + "attn_output.weight", state[layer + "self_attn.o_proj.weight"]
        yield block + "ffn_norm.weight", state[layer + "post_attention_layernorm.weight"]
        if layer + "mlp.experts.gate_up_proj" in state:
            gate_up = state[layer + "mlp.experts.gate_up_proj"]  # (experts, 2 * ffn, hidden): gate, up
            ffn = gate_up.shape[1] // 2
            yield block + "ffn_gate_inp.weight", state[layer + "mlp.gate.weight"]
            yield block + "ffn_gate_exps.weight", gate_up[:, :ffn]
            yield block + "ffn_up_exps.weight", gate_up[:, ffn:]
            yield block + "ffn_down_exps.weight", state[layer + "mlp.experts.down_proj"]
        else:
            yield block + "ffn_gate.weight", state[layer + "mlp.gate_proj.weight"]
            yield block + "ffn_up.weight", state[layer + "mlp.up_proj.weight"]
            yield block + "ffn_down.weight", state[layer + "mlp.down_proj.weight"]
    yield "output_norm.weight", state["model.norm.weight"]
    yield "output.weight", state.get("lm_head.weight", state["model.embed_tokens.weight"])
