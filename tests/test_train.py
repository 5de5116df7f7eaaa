"""Training: each mode learns, kill + resume equals an uninterrupted run, LoRA merges, bad configs fail."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from train_fixtures import FIXTURE, write_config
from transformers import AutoModelForCausalLM

from neko.errors import NekoError
from neko.train.config import load_config
from neko.train.loop import train
from neko.train.metrics import read_metrics


@pytest.mark.parametrize("mode", ["task_guided", "moe", "damex", "dense"])
def test_each_mode_trains_and_its_loss_falls(tmp_path, mode):
    model_dir = train(load_config(write_config(tmp_path, mode=mode)))
    losses = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert (model_dir / "model.safetensors").exists() and (model_dir / "neko.json").exists()
    logged = {key for line in read_metrics(tmp_path / "run") for key in line}
    assert ("expert_load" in logged) == (mode != "dense")
    assert {"loss_asr", "loss_ocr", "loss_tec", "lr", "tokens_per_s"} <= logged


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    steps = {"optim__max_steps": 60, "run__save_every": 10}
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    assert train(load_config(write_config(tmp_path / "whole", **steps))).exists()
    config = write_config(tmp_path / "killed", **steps)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "neko.cli", "train", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = tmp_path / "killed" / "run" / "checkpoints" / "step-00000020"
    deadline = time.time() + 600  # generous: a loaded machine may starve the subprocess
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), process.stderr.read().decode()[-2000:]
    assert not (tmp_path / "killed" / "run" / "model").exists(), "the run finished before it could be killed"

    train(load_config(config), resume=True)
    resumed = [m for m in read_metrics(tmp_path / "killed" / "run") if "loss" in m]
    uninterrupted = [m for m in read_metrics(tmp_path / "whole" / "run") if "loss" in m]
    assert [m["step"] for m in resumed] == list(range(1, 61))
    assert resumed[-1]["loss"] == pytest.approx(uninterrupted[-1]["loss"], rel=1e-4)


def test_a_run_stopped_until_a_step_snapshots_it_and_resumes_like_an_uninterrupted_one(tmp_path):
    steps = {"optim__max_steps": 8, "run__save_every": 5}
    (tmp_path / "whole").mkdir()
    (tmp_path / "stopped").mkdir()
    train(load_config(write_config(tmp_path / "whole", **steps)))
    config = write_config(tmp_path / "stopped", **steps)
    snapshot = train(load_config(config), until=3)
    run = tmp_path / "stopped" / "run"
    assert snapshot == run / "snapshots" / "step-00000003"
    assert (run / "checkpoints" / "step-00000003").exists() and not (run / "model").exists()
    assert AutoModelForCausalLM.from_pretrained(snapshot).config.num_local_experts > 1
    assert (snapshot / "neko.json").exists()
    with pytest.raises(NekoError, match=r"--until 2: the run in .* is already at step 3"):
        train(load_config(config), resume=True, until=2)
    (snapshot / "model.onnx").write_bytes(b"an export the user made")
    assert train(load_config(config), resume=True, until=3) == snapshot
    assert (snapshot / "model.onnx").read_bytes() == b"an export the user made"

    train(load_config(config), resume=True)
    resumed = [m for m in read_metrics(run) if "loss" in m]
    uninterrupted = [m for m in read_metrics(tmp_path / "whole" / "run") if "loss" in m]
    assert [m["step"] for m in resumed] == [m["step"] for m in uninterrupted]
    assert resumed[-1]["loss"] == pytest.approx(uninterrupted[-1]["loss"], rel=1e-4)


def test_lora_run_saves_a_merged_model_that_plain_transformers_loads(tmp_path):
    base = train(load_config(write_config(tmp_path, optim__max_steps=2)))
    (tmp_path / "lora").mkdir()
    config = write_config(
        tmp_path / "lora", model={"source": "pretrained", "path": str(base), "lora": {"r": 4}}
    )
    merged = train(load_config(config))
    loaded = AutoModelForCausalLM.from_pretrained(merged)
    original = AutoModelForCausalLM.from_pretrained(base)
    assert not any("lora" in name for name in loaded.state_dict())
    assert loaded.state_dict().keys() == original.state_dict().keys()
    changed = [k for k, v in loaded.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert any("q_proj" in k for k in changed) and any("experts" in k for k in changed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optim__learning_rate": 1.0}, "unknown key 'learning_rate'"),
        ({"data__train": ["no/such/file.jsonl"]}, "data file 'no/such/file.jsonl' does not exist"),
        ({"expert_map": {"asr": 0, "ocr": 1}}, "task 'tec' has no expert in the explicit expert map"),
        ({"tasks": ["asr", "st", "ocr", "tec", "nope"]}, "tasks[4]: unknown task 'nope'"),
        ({"data__train": ["."]}, "data file '.' is a folder, expected a file"),
        ({"model__architecture__num_experts": 2}, "3 tasks (asr, ocr, tec) but only 2 experts"),
        ({"mode": "sparse"}, "mode: must be one of 'task_guided', 'moe', 'damex' or 'dense', got 'sparse'"),
        ({"optim__lr": "fast"}, "optim.lr: must be a number, got 'fast'"),
        (
            {"custom_tasks": [{"name": "hw", "description": "d", "output": "o", "metric": "c", "font": "x"}]},
            "custom_tasks[0]: unknown key 'font'",
        ),
        ({"custom_tasks": [{"name": "hw", "description": "d"}]}, "custom_tasks[0].output: is required"),
    ],
)
def test_bad_configs_fail_before_any_work_with_one_line(tmp_path, change, message):
    config = write_config(tmp_path, **change)
    with pytest.raises(NekoError) as error:
        load_config(config)
    assert message in str(error.value) and str(error.value).startswith(f"{config}: ")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_cli_prints_config_errors_as_one_line(tmp_path):
    config = write_config(tmp_path, optim__learning_rate=1.0)
    result = subprocess.run(
        [sys.executable, "-m", "neko.cli", "train", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown key 'learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_dense_checkpoint_is_upcycled_and_trained_with_checkpointing(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from neko.train.tokenizer import train_tokenizer

    dense_dir = tmp_path / "dense"
    tokenizer = train_tokenizer(
        [line for line in FIXTURE.read_text().splitlines()], 400, ["asr", "ocr", "tec"]
    )
    dense = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    dense.save_pretrained(dense_dir)
    tokenizer.save_pretrained(dense_dir)
    config = write_config(
        tmp_path,
        model={"source": "dense", "path": str(dense_dir), "upcycle_experts": 4},
        optim__max_steps=6,
        run__gradient_checkpointing=True,
    )
    model_dir = train(load_config(config))
    upcycled = AutoModelForCausalLM.from_pretrained(model_dir)
    assert upcycled.config.model_type == "mixtral" and upcycled.config.num_local_experts == 4
    losses = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert len(losses) == 6 and all(loss == loss for loss in losses)


def test_tensorboard_gets_the_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(load_config(write_config(tmp_path, optim__max_steps=3, run__tensorboard=True)))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [m["loss"] for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx(logged, rel=1e-6)


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if it were not installed
    with pytest.raises(NekoError, match=r"run\.tensorboard needs the tensorboard package"):
        train(load_config(write_config(tmp_path, optim__max_steps=1, run__tensorboard=True)))


def test_a_log_line_averages_every_step_since_the_previous_one():
    from neko.train.data import Encoded
    from neko.train.metrics import IntervalStats

    stats = IntervalStats()
    asr, tec = Encoded([1], [1], "asr"), Encoded([1], [1], "tec")
    # step 1: one asr row, 2 target tokens of loss 1; step 2: one tec row, 1 target token of loss 4
    stats.add_tokens(torch.tensor([[1.0, 1.0]]), torch.tensor([[True, True]]), [asr], 10)
    stats.add("grad_norm", 1.0)
    stats.add_tokens(torch.tensor([[4.0, 0.0]]), torch.tensor([[True, False]]), [tec], 6)
    stats.add("grad_norm", 3.0)
    summary = stats.summary(lr=0.1, seconds=2.0, assignment=None)
    assert summary["loss"] == pytest.approx(6.0 / 3)  # token-weighted over both steps
    assert (summary["loss_asr"], summary["loss_tec"]) == (1.0, 4.0)
    assert summary["grad_norm"] == 2.0 and summary["tokens_per_s"] == 8.0


def test_dev_loss_is_logged_overall_and_per_task(tmp_path):
    config = write_config(tmp_path, data__dev=[str(FIXTURE)], run__eval_every=10, optim__max_steps=10)
    train(load_config(config))
    [line] = [m for m in read_metrics(tmp_path / "run") if "dev_loss" in m]
    assert line["step"] == 10
    assert {"dev_loss", "dev_loss_asr", "dev_loss_ocr", "dev_loss_tec"} == set(line) - {"step"}
    per_task = [line[f"dev_loss_{task}"] for task in ("asr", "ocr", "tec")]
    assert min(per_task) <= line["dev_loss"] <= max(per_task)


def test_the_saved_model_stores_tied_weights_once_in_the_dtype_its_config_names(tmp_path):
    from safetensors.torch import load_file

    model_dir = train(load_config(write_config(tmp_path, optim__max_steps=2)))
    weights = model_dir / "model.safetensors"
    stored = load_file(weights)
    assert "lm_head.weight" not in stored
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    assert json.loads((model_dir / "config.json").read_text())["dtype"] == "float16"  # read by "auto" loaders
    umask = os.umask(0)
    os.umask(umask)
    assert weights.stat().st_mode & 0o777 == 0o666 & ~umask
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize(
    ("files", "lacking"),
    [
        ([], "has no config.json"),
        (["config.json", "tokenizer.json"], "has no model.safetensors or model.safetensors.index.json"),
        (["config.json", "model.safetensors"], "has no tokenizer.json or tokenizer_config.json"),
    ],
)
def test_a_checkpoint_folder_lacking_a_file_fails_before_any_work(tmp_path, files, lacking):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for name in files:
        (checkpoint / name).write_text("{}")
    config = write_config(tmp_path, model={"source": "pretrained", "path": str(checkpoint)})
    with pytest.raises(NekoError) as error:
        load_config(config)
    message = str(error.value)
    assert "\n" not in message and f"model.path '{checkpoint}' {lacking}" in message


def test_a_damaged_checkpoint_state_is_one_line(tmp_path):
    config = write_config(tmp_path, optim__max_steps=2, run__save_every=1)
    train(load_config(config))
    shutil.rmtree(tmp_path / "run" / "model")  # as if killed after its last checkpoint
    state = max((tmp_path / "run" / "checkpoints").glob("step-*")) / "trainer_state.json"
    state.write_text("[]")
    with pytest.raises(NekoError, match=r"trainer_state.json: expected a JSON object, got list$"):
        train(load_config(config), resume=True)


def test_pretraining_text_is_encoded_in_one_batch_as_line_by_line_with_an_end_token_and_a_cap():
    from neko.train.data import encode_texts
    from neko.train.tokenizer import train_tokenizer

    lines = [json.loads(line)["reference"] for line in FIXTURE.read_text().splitlines()]
    tokenizer = train_tokenizer(lines, 400, ["asr", "ocr", "tec"])
    texts = [*lines[:20], "naïve café — “quoted”", "a"]
    encoded = encode_texts(texts, tokenizer, max_tokens=12)
    for text, sequence in zip(texts, encoded, strict=True):
        expected = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id][:12]
        assert sequence.input_ids == sequence.labels == expected
        assert sequence.task is None
    assert any(len(s.input_ids) == 12 for s in encoded) and encode_texts([], tokenizer, 12) == []
