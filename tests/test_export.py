"""`neko export --to gguf`: the file read back holds the model's weights, shapes and tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from correct_fixtures import make_model_dir
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct.gguf_export import export_gguf, permute_rope
from neko.correct.model_dir import load_model
from neko.errors import NekoError

gguf = pytest.importorskip("gguf")


def read(path):
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    # the reader gives each tensor in numpy order (outermost dimension first), as it was written
    tensors = {t.name: np.asarray(t.data).reshape(tuple(reversed(t.shape.tolist()))) for t in reader.tensors}
    return fields, tensors


@pytest.mark.parametrize("dense", [False, True])
def test_gguf_round_trip(tmp_path, dense):
    model_dir = make_model_dir(tmp_path / "m", dense=dense)
    out = export_gguf(model_dir, tmp_path / "out" / "model.gguf")
    fields, tensors = read(out)
    model = load_model(model_dir, torch.device("cpu"))
    config = model.config
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    assert fields["general.architecture"] == "llama"
    assert fields["llama.block_count"] == config.num_hidden_layers
    assert fields["llama.attention.head_count_kv"] == config.num_key_value_heads
    assert ("llama.expert_count" in fields) == (not dense)
    assert not dense or "blk.0.ffn_gate_exps.weight" not in tensors
    if not dense:
        assert fields["llama.expert_used_count"] == 2
        gate_up = state["model.layers.1.mlp.experts.gate_up_proj"]
        ffn = config.intermediate_size
        np.testing.assert_array_equal(tensors["blk.1.ffn_gate_exps.weight"], gate_up[:, :ffn])
        np.testing.assert_array_equal(tensors["blk.1.ffn_up_exps.weight"], gate_up[:, ffn:])
        np.testing.assert_array_equal(
            tensors["blk.1.ffn_down_exps.weight"], state["model.layers.1.mlp.experts.down_proj"]
        )
        np.testing.assert_array_equal(
            tensors["blk.1.ffn_gate_inp.weight"], state["model.layers.1.mlp.gate.weight"]
        )
    np.testing.assert_array_equal(
        tensors["blk.0.attn_k.weight"],
        permute_rope(state["model.layers.0.self_attn.k_proj.weight"], config.num_key_value_heads),
    )
    np.testing.assert_array_equal(
        tensors["blk.0.attn_v.weight"], state["model.layers.0.self_attn.v_proj.weight"]
    )
    np.testing.assert_array_equal(tensors["token_embd.weight"], state["model.embed_tokens.weight"])
    assert len(tensors) == 3 + config.num_hidden_layers * (6 + (3 if dense else 4))

    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"] | {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get)
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) for m in tokenizer["model"]["merges"]]
    types = fields["tokenizer.ggml.token_type"]
    assert {types[t["id"]] for t in tokenizer["added_tokens"]} == {gguf.TokenType.CONTROL}
    assert fields["tokenizer.ggml.eos_token_id"] == vocab["<|end|>"]


def test_permutation_pairs_rotate_half_dimensions():
    """Per head of size d, transformers rotates dimension i with i + d/2; GGML rotates 2i with 2i+1."""
    heads, head_dim = 2, 8
    rows = np.arange(heads * head_dim, dtype=np.float32)[:, None]
    permuted = permute_rope(rows, heads)[:, 0].reshape(heads, head_dim)
    for h in range(heads):
        for i in range(head_dim // 2):
            assert permuted[h, 2 * i] == h * head_dim + i
            assert permuted[h, 2 * i + 1] == h * head_dim + i + head_dim // 2


def test_export_command(tmp_path, model_path):
    if not any(group.name == "data" for group in app.registered_groups):
        _register_commands()  # as `main` does
    result = CliRunner().invoke(app, ["export", str(model_path), str(tmp_path / "m.gguf")])
    assert result.exit_code == 0 and (tmp_path / "m.gguf").is_file()
    result = CliRunner().invoke(app, ["export", str(model_path), str(tmp_path / "m.onnx"), "--to", "onnx"])
    assert isinstance(result.exception, NekoError) and "unknown export format 'onnx'" in str(result.exception)
    assert not (tmp_path / "m.onnx").exists()
