"""The onnx engine corrects as the torch engines do, without torch: same outputs, same gate evidence,
same decisions; it refuses an export its weights have moved on from; `auto` picks it where it pays."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from correct_fixtures import make_model_dir, random_inputs
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from neko.correct import Corrector
from neko.correct.engines import ONNX_MOST_INPUTS, onnx_most_inputs, pick_engine
from neko.correct.model_dir import read_model_info
from neko.correct.onnx_lm import export_matches
from neko.correct.tokenizer import load_tokenizer
from neko.errors import NekoError

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model directory with its ONNX export written into it."""
    from neko.correct.onnx_export import export_onnx

    path = make_model_dir(tmp_path_factory.mktemp("onnx-engine") / "m", max_new_tokens=16, open_gate=True)
    export_onnx(path, path)
    return path


@pytest.mark.parametrize("batch_size", [1, 5, 16])
def test_the_onnx_engine_corrects_as_the_copy_engine(model_dir, batch_size):
    examples = random_inputs(16, seed=batch_size)
    # no safety valve: a random model's outputs are degenerate, and the gate should see them
    found = {
        engine: Corrector.from_pretrained(model_dir, device="cpu", engine=engine).correct(
            examples, batch_size=batch_size, safety_valve=False, evidence=True
        )
        for engine in ("onnx", "copy")
    }
    for onnx, copy in zip(found["onnx"], found["copy"], strict=True):
        assert (onnx.output, onnx.text, onnx.decision, onnx.reason) == (
            copy.output,
            copy.text,
            copy.decision,
            copy.reason,
        )
        for field in ("margin", "rerank_margin", "familiarity"):
            assert getattr(onnx.evidence, field) == pytest.approx(getattr(copy.evidence, field), abs=1e-4)
    assert {c.decision for c in found["copy"]} - {"1-best"}  # some outputs were taken


def test_the_onnx_engine_abandons_hopeless_outputs_as_the_copy_engine(model_dir):
    """With the safety valve on, both engines stop writing the same outputs at the same token."""
    examples = random_inputs(16, seed=4)
    correctors = {
        engine: Corrector.from_pretrained(model_dir, device="cpu", engine=engine)
        for engine in ("onnx", "copy")
    }
    found = {engine: c.correct(examples, batch_size=5) for engine, c in correctors.items()}
    assert [(c.output, c.text, c.decision, c.reason) for c in found["onnx"]] == [
        (c.output, c.text, c.decision, c.reason) for c in found["copy"]
    ]
    full = correctors["copy"].correct(examples, batch_size=5, full_outputs=True)
    assert [c.text for c in full] == [c.text for c in found["copy"]]
    assert any(len(a.output) < len(b.output) for a, b in zip(found["copy"], full, strict=True))


def test_the_onnx_engine_scores_and_reranks_as_torch(model_dir):
    examples = random_inputs(12, seed=3)
    onnx = Corrector.from_pretrained(model_dir, engine="onnx")
    torch_engine = Corrector.from_pretrained(model_dir, device="cpu")
    for summed in (False, True):
        np.testing.assert_allclose(
            np.concatenate(onnx.score(examples, per_token=summed)),
            np.concatenate(torch_engine.score(examples, per_token=summed)),
            atol=1e-4,
        )
    assert onnx.rerank(examples) == torch_engine.rerank(examples)


def test_an_export_of_other_weights_is_refused_or_passed_over_by_auto(model_dir, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    weights = load_file(changed / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01  # trained on: the export is of the weights before
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(NekoError, match=r"not exported from this directory.s weights.*neko export"):
        Corrector.from_pretrained(changed, engine="onnx")
    assert export_matches(model_dir) and not export_matches(changed)
    with pytest.warns(UserWarning, match="correcting with the copy engine meanwhile"):
        corrector = Corrector.from_pretrained(changed, device="cpu", inputs=1)  # auto
    assert corrector.engine == "copy"


def test_what_the_onnx_engine_cannot_do_is_one_line(model_dir, tmp_path):
    corrector = Corrector.from_pretrained(model_dir, engine="onnx")
    with pytest.raises(NekoError, match="beam search"):
        corrector.correct([["a b c"]], task="asr", num_beams=2)
    with pytest.raises(NekoError, match="routing statistics need the torch model"):
        corrector.routing_stats([["a b c"]], task="asr")
    with pytest.raises(NekoError, match="chosen when loading"):
        corrector.engine = "copy"
    with pytest.raises(NekoError, match="runs on the CPU"):
        Corrector.from_pretrained(model_dir, device="cuda", engine="onnx")
    assert Corrector.from_pretrained(model_dir, device=torch.device("cpu"), engine="onnx").engine == "onnx"
    bare = make_model_dir(tmp_path / "bare")
    with pytest.raises(NekoError, match=r"has no model.onnx.*neko export"):
        Corrector.from_pretrained(bare, engine="onnx")


def test_auto_takes_the_onnx_engine_for_few_inputs_on_the_cpu(model_dir, tmp_path):
    assert pick_engine("auto", model_dir, 1) == "onnx"
    assert pick_engine("auto", model_dir, ONNX_MOST_INPUTS) == "onnx"
    assert pick_engine("auto", model_dir, ONNX_MOST_INPUTS + 1) == "copy"
    assert pick_engine("auto", model_dir, None) == "copy"  # unknown size (the library, beam search)
    assert pick_engine("auto", model_dir, 1, device="cuda") == "copy"
    assert pick_engine("transformers", model_dir, 1) == "transformers"
    bare = make_model_dir(tmp_path / "bare")
    assert pick_engine("auto", bare, 1) == "copy"
    export = tmp_path / "export"  # an export folder has no safetensors: only the onnx engine runs it
    export.mkdir()
    for name in ("model.onnx", "neko.json", "config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(model_dir / name, export / name)
    assert pick_engine("auto", export, None) == "onnx"
    corrector = Corrector.from_pretrained(export)
    assert corrector.engine == "onnx" and corrector.model is None


def test_auto_gives_the_onnx_engine_fewer_inputs_when_the_model_has_more_experts(model_dir, tmp_path):
    """The export runs every expert on every token, so its lead over torch shrinks with the experts."""
    wider = tmp_path / "eight-experts"
    shutil.copytree(model_dir, wider)
    config = json.loads((wider / "config.json").read_text())
    assert config["num_local_experts"] <= 4 and onnx_most_inputs(model_dir) == ONNX_MOST_INPUTS
    (wider / "config.json").write_text(json.dumps(config | {"num_local_experts": 8}))
    assert onnx_most_inputs(wider) == ONNX_MOST_INPUTS // 2
    assert pick_engine("auto", wider, ONNX_MOST_INPUTS // 2) == "onnx"
    assert pick_engine("auto", wider, ONNX_MOST_INPUTS // 2 + 1) == "copy"


def test_the_light_tokenizer_is_transformers_fast_tokenizer(model_dir):
    info = read_model_info(model_dir)
    light = load_tokenizer(model_dir, info.prompt_style, info.tasks)
    full = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    assert light.all_special_ids == sorted(full.all_special_ids)
    assert (light.pad_token_id, light.eos_token, len(light)) == (full.pad_token_id, full.eos_token, len(full))
    for text in ("the cat sad on the mat", "<|hyp|> helo <|out|> héllo  wörld\tx <|end|>", ""):
        ids = light.encode(text)
        assert ids == full.encode(text, add_special_tokens=False)
        for skip in (True, False):
            assert light.decode(ids, skip_special_tokens=skip) == full.decode(
                ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False
            )
