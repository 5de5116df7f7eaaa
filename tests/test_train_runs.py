"""Run folders and configs: no run continues or ships another run's weights, and every bad setting or
training file is a one-line error before anything is written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from train_fixtures import FIXTURE, write_config
from transformers import AutoTokenizer

from neko.errors import NekoError
from neko.train.checkpoints import REPLACED_PREFIX, STATE_FILE, Checkpoints
from neko.train.config import load_config, parse_override, read_raw
from neko.train.loop import train
from neko.train.metrics import read_metrics

QUICK = {
    "tasks": ["asr", "ocr", "tec"],
    "model": {
        "architecture": {
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "num_experts": 4,
            "vocab_size": 350,
        }
    },
    "data": {"train": [str(FIXTURE)]},
    "optim": {"lr": 3e-3, "warmup_steps": 1, "epochs": 5, "max_steps": 4, "tokens_per_batch": 600},
    "run": {"log_every": 1, "save_every": 2, "threads": 1},
}


def config_file(tmp_path: Path, name: str = "config.yaml", **changes) -> Path:
    """QUICK with `section__key=value` changes, training into tmp_path/run."""
    return write_config(tmp_path, name, base=QUICK, **changes)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_new_run_refuses_a_folder_holding_another_run_unless_told_to_overwrite(tmp_path):
    train(load_config(config_file(tmp_path)))
    before = snapshot(tmp_path / "run")
    other = config_file(tmp_path, "other.yaml", model__architecture__vocab_size=450, optim__max_steps=2)
    with pytest.raises(NekoError, match="holds another run; pass --resume to continue it or --overwrite"):
        train(load_config(other))
    with pytest.raises(NekoError, match="holds a run of this config"):
        train(load_config(config_file(tmp_path)))
    assert snapshot(tmp_path / "run") == before

    (tmp_path / "run" / "notes.txt").write_text("mine")
    train(load_config(other), overwrite=True)
    assert (
        json.loads((tmp_path / "run" / "run.json").read_text())["recipe"]["model"]["architecture"][
            "vocab_size"
        ]
        == 450
    )
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-00000002"]
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only what neko wrote is cleared


def test_an_overwrite_that_fails_late_leaves_the_earlier_run_as_it_was(tmp_path):
    train(load_config(config_file(tmp_path, optim__max_steps=2)))
    before = snapshot(tmp_path / "run")
    too_big = config_file(tmp_path, "big.yaml", optim__max_steps=2, optim__grad_accum=10_000)
    with pytest.raises(NekoError, match="nothing to train"):  # found after the new tokenizer is trained
        train(load_config(too_big), overwrite=True)
    assert snapshot(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_overwrite_trains_the_new_tokenizer(tmp_path):
    train(load_config(config_file(tmp_path, optim__max_steps=1)))
    small = len(AutoTokenizer.from_pretrained(tmp_path / "run" / "tokenizer"))
    train(
        load_config(config_file(tmp_path, model__architecture__vocab_size=500, optim__max_steps=1)),
        overwrite=True,
    )
    assert len(AutoTokenizer.from_pretrained(tmp_path / "run" / "tokenizer")) > small


def test_resume_refuses_a_run_of_another_config_or_data_naming_the_difference(tmp_path):
    data = tmp_path / "train.jsonl"
    shutil.copy(FIXTURE, data)
    config = config_file(tmp_path, data__train=[str(data)])
    train(load_config(config))
    with pytest.raises(NekoError, match=r"the config differs: optim.max_steps 4 -> 18"):
        longer = config_file(tmp_path, "longer.yaml", data__train=[str(data)], optim__max_steps=18)
        train(load_config(longer), resume=True)
    data.write_text("".join(data.read_text().splitlines(keepends=True)[1:]))  # the file was rebuilt
    with pytest.raises(NekoError, match="the training data differ"):
        train(load_config(config), resume=True)
    shutil.copy(FIXTURE, data)
    with pytest.raises(NekoError, match="exclude each other"):
        train(load_config(config), resume=True, overwrite=True)
    # what does not change the weights may change on resume
    changed = config_file(tmp_path, "changed.yaml", data__train=[str(data)], run__log_every=2, run__threads=2)
    train(load_config(changed), resume=True)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    train(load_config(config_file(tmp_path / "a", optim__max_steps=6)))
    config_b = config_file(tmp_path / "b", optim__max_steps=6, run__seed=1)
    train(load_config(config_b))
    checkpoints_b = tmp_path / "b" / "run" / "checkpoints"
    shutil.rmtree(checkpoints_b)
    shutil.copytree(tmp_path / "a" / "run" / "checkpoints", checkpoints_b)
    with pytest.raises(NekoError, match="step-00000006: a checkpoint of another run"):
        train(load_config(config_b), resume=True)


def test_resume_says_when_there_is_nothing_to_resume(tmp_path, capsys):
    train(load_config(config_file(tmp_path, optim__max_steps=1)), resume=True)
    assert "nothing to resume in" in capsys.readouterr().err
    assert (tmp_path / "run" / "model" / "neko.json").exists()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bfloat16_instructions_is_said_to_be_emulated(
    tmp_path, capsys, monkeypatch, native
):
    monkeypatch.setattr("neko.train.setup.cpu_has_bf16", lambda: native)
    AcceleratorState._reset_state()  # the process's accelerator state holds the other tests' precision
    try:
        train(load_config(config_file(tmp_path, optim__max_steps=1, run__bf16=True)))
    finally:
        AcceleratorState._reset_state()
    said = capsys.readouterr().err
    assert ("run.bf16: this CPU has no bfloat16 instructions" in said) is not native
    assert (tmp_path / "run" / "model" / "neko.json").exists()


def test_a_finished_run_resumes_from_its_final_checkpoint_despite_a_torn_log_line(tmp_path):
    config = config_file(tmp_path, optim__max_steps=3)
    train(load_config(config))
    assert (tmp_path / "run" / "checkpoints" / "step-00000003").exists()  # the final step, not a multiple
    metrics = tmp_path / "run" / "metrics.jsonl"
    with metrics.open("a") as out:
        out.write('{"step": 4, "lo')  # a kill in the middle of a write
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2, 3]
    weights = (tmp_path / "run" / "model" / "model.safetensors").read_bytes()
    checkpoints = tmp_path / "run" / "checkpoints"
    shutil.copytree(checkpoints / "step-00000003", checkpoints / "step-00000003.bak")  # the user's copy
    train(load_config(config), resume=True)
    assert (tmp_path / "run" / "model" / "model.safetensors").read_bytes() == weights
    assert (checkpoints / "step-00000003.bak").exists()
    assert metrics.read_text().count("\n") == 3 and metrics.read_text().endswith("\n")


def test_a_log_line_that_is_not_an_object_is_an_error_naming_it(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n{"step": 2')
    with pytest.raises(NekoError, match=r"metrics.jsonl:2: not a JSON object"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2')
    assert read_metrics(tmp_path) == [{"step": 1}]


def test_a_damaged_line_inside_the_log_is_an_error_naming_it(tmp_path):
    config = config_file(tmp_path, optim__max_steps=2)
    train(load_config(config))
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text("garbage\n" + metrics.read_text())
    with pytest.raises(NekoError, match=r"metrics.jsonl:1: not valid JSON"):
        train(load_config(config), resume=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": []}, "tasks: must have at least 1 item"),
        ({"optim__betas": [0.9]}, "optim.betas: must be a pair [beta1, beta2], got 1 values"),
        ({"optim__betas": [0.9, 1.0]}, "optim.betas[1]: must be < 1"),
        ({"optim__lr": -1e-3}, "optim.lr: must be > 0"),
        ({"run__save_every": 0}, "run.save_every: must be >= 1"),
        ({"run__log_every": 0}, "run.log_every: must be >= 1"),
        ({"optim__grad_accum": 0}, "optim.grad_accum: must be >= 1"),
        ({"run__threads": -1}, "run.threads: must be >= 1"),
        ({"model__architecture__experts_per_token": 5}, "experts_per_token (5) must be <= num_experts (4)"),
        ({"model__architecture__num_attention_heads": 3}, "num_attention_heads (3) must divide hidden_size"),
        ({"model__architecture__num_key_value_heads": 3}, "num_key_value_heads (3) must divide"),
        ({"optim__epochs": 0}, "optim.epochs: must be > 0"),
        ({"data__train": [{"path": str(FIXTURE), "limit": -1}]}, "data.train[0].limit: must be >= 1"),
        ({"data__train": [{"path": str(FIXTURE), "task": "st"}]}, "data.train[0].task 'st' is not in tasks"),
        ({"data__train": [{"path": str(FIXTURE), "oops": 1}]}, "data.train[0]: unknown key 'oops'"),
        ({"run__bf16": "yes"}, "run.bf16: must be true or false, got 'yes'"),
        ({"run__seed": "1"}, "run.seed: must be an integer, got '1'"),
        ({"tasks": ["asr", "asr"]}, "tasks: lists asr more than once"),
        ({"model__lora": {"dropout": 1.5}}, "model.lora.dropout: must be < 1"),
        ({"data__max_hypotheses": 0}, "data.max_hypotheses: must be >= 1"),
    ],
)
def test_each_bad_setting_is_one_line_naming_the_key(tmp_path, change, message):
    path = config_file(tmp_path, **change)
    with pytest.raises(NekoError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no examples (data.train[0])"),
        ([{"id": "a", "task": "asr", "hypotheses": ["x"]}], "example 'a' has no reference"),
        ([{"id": "b", "task": "st", "hypotheses": ["x"], "reference": "y"}], "example 'b' is of task 'st'"),
    ],
)
def test_bad_training_files_fail_before_anything_is_written(tmp_path, lines, message):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(NekoError, match=re.escape(message)):
        train(load_config(config_file(tmp_path, data__train=[str(data)])))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("optim.lr", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("optim..lr=3", "expected KEY=VALUE"),
        ("tasks=[asr", "the value is not valid YAML"),
    ],
)
def test_malformed_set_is_one_line(item, message):
    with pytest.raises(NekoError, match=message):
        parse_override(item)


def test_cli_reports_a_set_into_a_setting_as_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "neko.cli", "train", str(config_file(tmp_path)), "--set", "optim.lr.x=1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "optim.lr is a setting, not a section" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_shipped_config_loads_or_fails_only_on_missing_data():
    for path in sorted(Path("configs").glob("*.yaml")):
        try:
            load_config(path)
        except NekoError as error:
            assert "does not exist" in str(error) or "is not a directory" in str(error), str(error)


def test_every_data_file_a_shipped_config_names_is_committed():
    """A renamed or removed data file would leave a recipe that fails only when someone reruns it."""
    named = set()
    for path in sorted(Path("configs").glob("*.yaml")):
        data = read_raw(path).get("data", {})
        for source in [*data.get("train", []), *data.get("dev", [])]:
            named.add(source["path"] if isinstance(source, dict) else source)
    assert named and {name for name in named if not Path(name).is_file()} == set()


def test_a_checkpoint_of_a_saved_step_replaces_it_and_a_kill_midway_keeps_one(tmp_path):
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=True)
    checkpoints = Checkpoints(tmp_path, keep_last=1)
    checkpoints.save(accelerator, 4, {"run": "first"})
    final = checkpoints.save(accelerator, 4, {"run": "second"})
    assert checkpoints.all() == [final] and sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert json.loads((final / STATE_FILE).read_text())["run"] == "second"
    # killed after setting the old one aside, before the new one took its name: the old one is back
    set_aside = tmp_path / f"{REPLACED_PREFIX}{final.name}"
    final.rename(set_aside)
    assert checkpoints.latest() == final and not set_aside.exists()
    # killed after the new one took its name, before the old one was deleted: the old one goes
    shutil.copytree(final, set_aside)
    assert checkpoints.all() == [final] and not set_aside.exists()
