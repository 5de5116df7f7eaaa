"""Growing experts: copies of their donors in every layer, outputs changed only where the new expert is
picked, checkpoints (neko.json included) written whole, and a grown model trains a new task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from moe_fixtures import TINY, tiny_moe
from safetensors.torch import load_file
from train_fixtures import FIXTURE, write_config
from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM

from neko.errors import NekoError
from neko.moe.grow import grow_checkpoint, grow_experts
from neko.train.config import load_config
from neko.train.loop import train

MT_FIXTURE = FIXTURE.parent / "mt.jsonl"


def tokens(seed: int = 1, length: int = 12) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (2, length), generator=torch.Generator().manual_seed(seed))


def mixtral(layers: int = 2, top_k: int = 2, seed: int = 0) -> MixtralForCausalLM:
    """A tiny random Mixtral whose routers score the experts unevenly and whose experts differ
    clearly, as trained ones do."""
    config = MixtralConfig(
        **{**TINY, "num_hidden_layers": layers}, num_local_experts=4, num_experts_per_tok=top_k
    )
    torch.manual_seed(seed)
    model = MixtralForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.gate.weight.normal_(0, 1.0)
            layer.mlp.experts.gate_up_proj.normal_(0, 0.3)
            layer.mlp.experts.down_proj.normal_(0, 0.3)
    return model


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe"])
def test_each_new_expert_is_a_copy_of_its_donor_in_every_layer(family):
    model = tiny_moe(family)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    grow_experts(model, [1, 3, 1], router="copy")
    state = model.state_dict()
    blocks = [name.removesuffix("gate.weight") for name in state if name.endswith("mlp.gate.weight")]
    assert len(blocks) == TINY["num_hidden_layers"]
    for prefix in blocks:
        for name in ("experts.gate_up_proj", "experts.down_proj", "gate.weight"):
            old, new = before[prefix + name], state[prefix + name]
            assert new.shape[0] == 7
            assert torch.equal(new[:4], old)
            assert torch.equal(new[4:], old[[1, 3, 1]])
    unchanged = [name for name in before if not name.startswith(tuple(blocks))]
    assert all(torch.equal(before[name], state[name]) for name in unchanged)
    counts = model.config.num_local_experts if family == "mixtral" else model.config.num_experts
    assert counts == 7
    logits(model, tokens())  # the grown model runs


def test_the_mean_router_row_is_the_mean_of_the_existing_rows():
    model = mixtral()
    rows = [layer.mlp.gate.weight.clone() for layer in model.model.layers]
    grow_experts(model, [2])
    for layer, old in zip(model.model.layers, rows, strict=True):
        assert torch.allclose(layer.mlp.gate.weight[4], old.mean(0))
        assert torch.equal(layer.mlp.experts.down_proj[4], layer.mlp.experts.down_proj[2])


@pytest.mark.parametrize("router", ["mean", "copy"])
def test_top1_routing_computes_exactly_what_it_did(router):
    model = mixtral(top_k=1)
    expected = logits(model, tokens())
    grow_experts(model, [1], router=router)
    assert torch.allclose(logits(model, tokens()), expected, atol=1e-6)


@pytest.mark.parametrize("router", ["mean", "copy"])
def test_top2_outputs_change_only_where_the_new_expert_is_picked(router):
    """One layer: a position's MLP input does not depend on the experts, so the router logits of the
    ungrown model say where the new expert enters the top-2: exactly there, and only there, the
    logits change. On this model `copy` changes 28% of the positions, by up to 0.32, `mean` 14% by up
    to 0.0006 (the mean row barely enters the top-2, with a weight close to the one it displaces)."""
    model = mixtral(layers=1)
    ids = tokens(length=40)
    with torch.no_grad():
        output = model(ids, output_router_logits=True)
    scores = output.router_logits[0]  # (positions, experts)
    new_score = scores[:, 1] if router == "copy" else scores.mean(-1)
    top2 = scores.topk(2, dim=-1).values
    # copy: it ties the donor, which displaces the second only where the donor was first
    picked = scores.argmax(-1) == 1 if router == "copy" else new_score > top2[:, 1]
    grow_experts(model, [1], router=router)
    change = (logits(model, ids) - output.logits).abs().amax(-1).flatten()
    assert 0 < picked.sum() < len(picked)
    assert torch.all(change[~picked] < 1e-5)
    assert change[picked].max() > 1e-4


def test_noise_is_seeded_and_sets_copies_apart():
    grown = [grow_experts(mixtral(), [1], noise_std=0.01, seed=seed) for seed in (5, 5, 6)]
    experts = [model.model.layers[0].mlp.experts.gate_up_proj for model in grown]
    assert torch.equal(experts[0], experts[1])
    assert not torch.equal(experts[0], experts[2])
    difference = (experts[0][4] - experts[0][1]).abs()
    assert 0 < difference.max() < 0.1


@pytest.mark.parametrize(
    ("copies", "options", "message"),
    [
        ([4], {}, "cannot copy expert 4: the model has 4 experts, 0..3"),
        ([-1], {}, "cannot copy expert -1"),
        ([True], {}, "cannot copy expert True"),
        ([], {}, "name at least one expert to copy"),
        ([0], {"noise_std": -1.0}, "noise_std must not be negative"),
        ([0], {"router": "random"}, "unknown router initialisation 'random'; expected one of mean, copy"),
    ],
)
def test_bad_arguments_are_one_line_errors_and_change_nothing(copies, options, message):
    model = mixtral()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(NekoError, match=message):
        grow_experts(model, copies, **options)
    assert model.config.num_local_experts == 4
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_a_dense_model_has_no_experts_to_grow():
    from transformers import LlamaConfig, LlamaForCausalLM

    with pytest.raises(NekoError, match="a 'llama' model has no experts"):
        grow_experts(LlamaForCausalLM(LlamaConfig(**TINY)), [0])


# ---------------------------------------------------------------------------------------------------


def neko_model_dir(tmp_path, tasks=("asr", "ocr", "tec"), expert_map=None):
    """A neko model directory (tokenizer, neko.json, fp16 weights) from a 2-step tiny training run."""
    config = write_config(tmp_path / "base", tasks=list(tasks), expert_map=expert_map, optim__max_steps=2)
    return train(load_config(config))


def test_a_checkpoint_grows_into_a_new_folder_with_its_tokenizer_and_model_info(tmp_path):
    source = neko_model_dir(tmp_path)
    out = grow_checkpoint(source, tmp_path / "grown", [2], noise_std=0.001, seed=3)
    assert {"config.json", "generation_config.json", "model.safetensors", "neko.json"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    info, old_info = (json.loads((d / "neko.json").read_text()) for d in (out, source))
    assert info["assignment"] == {**old_info["assignment"], "num_experts": 5}
    assert {k: v for k, v in info.items() if k != "assignment"} == {
        k: v for k, v in old_info.items() if k != "assignment"
    }
    grown = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert grown.config.num_local_experts == 5
    stored = load_file(out / "model.safetensors")  # in the dtype the source is stored in
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    source_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float16)
    expected = grow_experts(source_model, [2], noise_std=0.001, seed=3).float()
    assert torch.equal(logits(grown, tokens()), logits(expected, tokens()))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_checkpoint_mistakes_are_one_line_errors_that_write_nothing(tmp_path):
    source = neko_model_dir(tmp_path)
    with pytest.raises(NekoError, match="no such model directory"):
        grow_checkpoint(tmp_path / "missing", tmp_path / "out", [0])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(NekoError, match="already exists and is not an empty directory"):
        grow_checkpoint(source, tmp_path / "taken", [0])
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(NekoError, match="cannot copy expert 9: the model has 4 experts"):
        grow_checkpoint(source, tmp_path / "out", [9])
    info = (source / "neko.json").read_text()
    (source / "neko.json").write_text(info.replace('"num_experts": 4', '"num_experts": 8'))
    with pytest.raises(NekoError, match="num_experts is the model's 4"):
        grow_checkpoint(source, tmp_path / "out", [0])
    (source / "neko.json").write_text(info)
    (source / "model.safetensors").unlink()
    with pytest.raises(NekoError, match="weights are read as safetensors only"):
        grow_checkpoint(source, tmp_path / "out", [0])
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_grows_a_checkpoint_and_reports_mistakes_as_one_line(tmp_path):
    source = neko_model_dir(tmp_path)
    command = [sys.executable, "-m", "neko.cli", "grow-experts", str(source)]
    done = subprocess.run(
        [*command, str(tmp_path / "grown"), "--copy", "1", "--copy", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "grown" / "neko.json").read_text())["assignment"]["num_experts"] == 6
    assert "6 experts" in done.stdout
    for arguments, message in [
        ([str(tmp_path / "grown"), "--copy", "1"], "already exists"),
        ([str(tmp_path / "out"), "--copy", "4"], "cannot copy expert 4"),
        ([str(tmp_path / "out")], "name at least one expert to copy"),
    ]:
        failed = subprocess.run([*command, *arguments], capture_output=True, text=True, check=False)
        assert failed.returncode == 2
        assert message in failed.stderr and "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1


def test_a_grown_model_trains_a_new_task_on_its_new_expert(tmp_path):
    tasks = ["asr", "st", "ocr", "tec"]
    source = neko_model_dir(tmp_path, tasks, {"asr": 3, "st": 1, "ocr": 0, "tec": 2})
    grown = grow_checkpoint(source, tmp_path / "grown", [1])
    config = write_config(
        tmp_path / "stage",
        tasks=[*tasks, "mt"],
        expert_map={"asr": 3, "st": 1, "ocr": 0, "tec": 2, "mt": 4},
        model={"source": "pretrained", "path": str(grown)},
        data={"train": [str(FIXTURE), str(MT_FIXTURE)], "dev": [str(MT_FIXTURE)]},
        optim__max_steps=3,
    )
    model_dir = train(load_config(config))
    info = json.loads((model_dir / "neko.json").read_text())
    assert info["tasks"] == [*tasks, "mt"]
    assert info["assignment"] == {
        "num_experts": 5,
        "task_to_expert": {"asr": 3, "st": 1, "ocr": 0, "tec": 2, "mt": 4},
    }
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.num_local_experts == 5
