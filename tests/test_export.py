"""`neko export`: the GGUF file read back holds the model's weights, shapes and tokenizer; the ONNX
export gives, in ONNX Runtime, the logits transformers gives."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from correct_fixtures import make_model_dir
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct import onnx_export as onnx_export_module
from neko.correct import torch_lm
from neko.correct.generation import left_pad
from neko.correct.gguf_export import export_gguf, permute_rope
from neko.correct.onnx_export import COPIED, MODEL_FILE, export_onnx
from neko.correct.torch_lm import load_model
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


def invoke_export(*args) -> object:
    if not any(group.name == "data" for group in app.registered_groups):
        _register_commands()  # as `main` does
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_export_command(tmp_path, model_path):
    result = invoke_export(model_path, tmp_path / "m.gguf")
    assert result.exit_code == 0 and (tmp_path / "m.gguf").is_file()
    result = invoke_export(model_path, tmp_path / "m.bin", "--to", "safetensors")
    assert isinstance(result.exception, NekoError)
    assert "unknown export format 'safetensors'" in str(result.exception)
    assert not (tmp_path / "m.bin").exists()


@pytest.fixture(scope="module", params=[False, True], ids=["mixtral", "mistral"])
def onnx_export(request, tmp_path_factory):
    """A tiny model directory and its ONNX export, written by `neko export --to onnx`."""
    pytest.importorskip("onnxscript")
    root = tmp_path_factory.mktemp("onnx")
    model_dir = make_model_dir(root / "model", dense=request.param)
    result = invoke_export(model_dir, root / "export", "--to", "onnx")
    assert result.exit_code == 0, result.output
    return model_dir, root / "export"


def test_onnx_runtime_gives_the_logits_of_transformers(onnx_export):
    """On left-padded batches of rows of different lengths (and other batch sizes and widths than
    the export traced), at the positions each row asks for."""
    ort = pytest.importorskip("onnxruntime")
    model_dir, export = onnx_export
    assert sorted(p.name for p in export.iterdir()) == sorted([MODEL_FILE, *COPIED])
    assert (export / "neko.json").read_bytes() == (model_dir / "neko.json").read_bytes()
    session = ort.InferenceSession(str(export / MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "logit_index"]
    model = load_model(model_dir, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    for lengths in ([9, 3, 14, 1], [1], [25, 25, 7]):
        rows = [torch.randint(1, vocab, (n,), generator=generator).tolist() for n in lengths]
        input_ids, attention_mask, position_ids = left_pad(rows, 0, torch.device("cpu"))
        with torch.inference_mode():
            expected = model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
            ).logits.numpy()
        width = input_ids.shape[1]
        # every real position of each row, its first one repeated to fill the shorter rows
        index = np.array([[max(width - n, p) for p in range(width)] for n in lengths], dtype=np.int64)
        feed = {
            "input_ids": input_ids.numpy(),
            "attention_mask": attention_mask.numpy(),
            "logit_index": index,
        }
        (logits,) = session.run(["logits"], feed)
        assert logits.shape == (len(rows), width, vocab) and logits.dtype == np.float32
        np.testing.assert_allclose(
            logits, np.take_along_axis(expected, index[..., None], axis=1), atol=1e-4, rtol=1e-4
        )


def test_onnx_export_replaces_an_earlier_export_and_nothing_else(tmp_path, onnx_export, monkeypatch):
    model_dir, export = onnx_export
    earlier = shutil.copytree(export, tmp_path / "earlier")
    (earlier / f"{MODEL_FILE}.data").write_text("an earlier export's external weights")
    monkeypatch.setattr(
        onnx_export_module, "_export_graph", lambda path, destination: destination.write_text("new")
    )
    assert export_onnx(model_dir, earlier) == earlier / MODEL_FILE
    assert (earlier / MODEL_FILE).read_text() == "new"
    assert not (earlier / f"{MODEL_FILE}.data").exists()  # replaced whole: nothing stale is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]  # no staging folder left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(NekoError, match=r"holds notes.txt, which is not part of an ONNX export"):
        export_onnx(model_dir, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(NekoError, match="is a file"):
        export_onnx(model_dir, mine / "notes.txt")
    assert (mine / "notes.txt").read_text() == "keep me"


def test_onnx_export_names_the_extra_when_a_package_is_missing(tmp_path, monkeypatch, model_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a),
    )
    result = invoke_export(model_path, tmp_path / "out", "--to", "onnx")
    assert isinstance(result.exception, NekoError)
    assert "onnxscript" in str(result.exception) and "neko[onnx]" in str(result.exception)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("to", ["gguf", "onnx"])
@pytest.mark.parametrize("damage", ["not json", "[1, 2]"])
def test_a_damaged_config_is_one_line_naming_the_file(tmp_path, model_path, to, damage):
    if to == "onnx":
        pytest.importorskip("onnxscript")
    broken = tmp_path / "broken"
    shutil.copytree(model_path, broken)
    (broken / "config.json").write_text(damage)
    result = invoke_export(broken, tmp_path / "out", "--to", to)
    assert isinstance(result.exception, NekoError)
    message = str(result.exception)
    assert "\n" not in message and message.startswith(f"{broken / 'config.json'}")
    assert not (tmp_path / "out").exists()


def test_a_gguf_is_not_written_over_the_model_or_into_a_folder(tmp_path, model_path, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(model_path, model)
    weights = (model / "model.safetensors").read_bytes()
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("keep me\n")
    loads = []
    monkeypatch.setattr(torch_lm, "load_model", lambda *args: loads.append(args))  # no work may start
    for out, fragment in (
        (model / "model.safetensors", "is a file of the model"),
        (tmp_path / "folder", "is a folder"),
        (tmp_path / "file" / "m.gguf", "is a file, not a folder"),
    ):
        result = invoke_export(model, out)
        assert isinstance(result.exception, NekoError) and fragment in str(result.exception), result.output
    assert loads == [] and (model / "model.safetensors").read_bytes() == weights
