"""Parked runs: a run folder small enough to commit that `neko train --resume` continues elsewhere."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_train_runs import config_file
from train_fixtures import Stop, counted_optimizer_steps

from neko.errors import NekoError
from neko.train.checkpoints import REWARM_STEPS
from neko.train.config import load_config
from neko.train.loop import train
from neko.train.metrics import read_metrics
from neko.train.park import park


def stopped_run(tmp_path, steps: int, stop_after: int, tied: bool = True):
    """A run of `steps` steps killed after `stop_after`, a checkpoint every 2 steps."""
    config = config_file(
        tmp_path,
        optim__max_steps=steps,
        optim__warmup_steps=1,
        run__save_every=2,
        model__architecture__tie_word_embeddings=tied,
    )
    with counted_optimizer_steps(stop_after=stop_after), pytest.raises(Stop):
        train(load_config(config))
    return config


def test_a_parked_run_holds_fp16_weights_of_its_latest_checkpoint_and_no_optimizer(tmp_path):
    stopped_run(tmp_path, steps=8, stop_after=5)
    parked = park(tmp_path / "run", tmp_path / "parked")
    assert parked == tmp_path / "parked" / "checkpoints" / "step-00000004"
    assert sorted(p.name for p in parked.iterdir()) == ["model.safetensors", "trainer_state.json"]
    weights = load_file(parked / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float16}
    full = load_file(tmp_path / "run" / "checkpoints" / "step-00000004" / "model.safetensors")
    assert weights.keys() == full.keys()
    assert all(torch.allclose(weights[k].float(), full[k], rtol=1e-3, atol=1e-4) for k in full)
    assert json.loads((parked / "trainer_state.json").read_text())["weights_only"] is True
    assert (tmp_path / "parked" / "run.json").read_bytes() == (tmp_path / "run" / "run.json").read_bytes()


@pytest.mark.parametrize("tied", [True, False], ids=["tied-embeddings", "untied"])
def test_a_parked_run_continues_at_its_step_with_the_learning_rate_rewarmed(tmp_path, capsys, tied):
    steps = 4 + REWARM_STEPS + 2
    config = stopped_run(tmp_path, steps=steps, stop_after=5, tied=tied)
    park(tmp_path / "run", tmp_path / "parked")
    shutil.rmtree(tmp_path / "run")
    shutil.copytree(tmp_path / "parked", tmp_path / "run")
    with counted_optimizer_steps() as taken:
        train(load_config(config), resume=True)
    assert taken[0] == steps - 4
    assert "continuing a parked run at step 4" in capsys.readouterr().err
    lines = {m["step"]: m for m in read_metrics(tmp_path / "run") if "lr" in m}
    assert sorted(lines) == list(range(1, steps + 1))
    tie = {"model__architecture__tie_word_embeddings": tied}
    uninterrupted = config_file(tmp_path / "b", optim__max_steps=steps, optim__warmup_steps=1, **tie)
    train(load_config(uninterrupted))
    reference = {m["step"]: m["lr"] for m in read_metrics(tmp_path / "b" / "run") if "lr" in m}
    # the lr logged after step s is the one step s + 1 uses: a ramp of 1/20, 2/20, ... of the schedule
    for step in range(5, 5 + REWARM_STEPS):
        ramp = min(1.0, (step - 4 + 1) / REWARM_STEPS)
        assert lines[step]["lr"] == pytest.approx(reference[step] * ramp)
    assert lines[steps]["lr"] == pytest.approx(reference[steps])
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_a_finished_run_parks_its_model_and_a_new_parking_replaces_the_old(tmp_path):
    config = stopped_run(tmp_path, steps=8, stop_after=3)
    park(tmp_path / "run", tmp_path / "parked")
    train(load_config(config), resume=True)
    parked = park(tmp_path / "run", tmp_path / "parked")
    assert parked == tmp_path / "parked" / "model"
    assert not (tmp_path / "parked" / "checkpoints").exists()
    model = tmp_path / "run" / "model" / "model.safetensors"
    assert (parked / "model.safetensors").read_bytes() == model.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    shutil.rmtree(tmp_path / "run")
    shutil.copytree(tmp_path / "parked", tmp_path / "run")
    with pytest.raises(NekoError, match=r"a finished run \(model/\) without a checkpoint to continue from"):
        train(load_config(config), resume=True)  # not trained again from step 0 over its model
    assert (parked / "model.safetensors").read_bytes() == model.read_bytes()


def test_park_refuses_what_is_not_a_run_and_a_folder_it_would_overwrite(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NekoError, match="not a training run"):
        park(tmp_path / "empty", tmp_path / "parked")
    stopped_run(tmp_path, steps=8, stop_after=3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    with pytest.raises(NekoError, match="notes: exists and is not a parked run"):
        park(tmp_path / "run", tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"
    shutil.copytree(tmp_path / "run", tmp_path / "live")
    for live in (tmp_path / "run", tmp_path / "live"):  # a run parked onto itself or onto another run
        with pytest.raises(NekoError, match="holds a run's full checkpoints, not a parked run"):
            park(tmp_path / "run", live)
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "optimizer.bin").exists()


def test_damaged_parked_weights_are_one_line_naming_the_file(tmp_path):
    config = stopped_run(tmp_path, steps=8, stop_after=3)
    park(tmp_path / "run", tmp_path / "parked")
    weights = tmp_path / "parked" / "checkpoints" / "step-00000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    shutil.rmtree(tmp_path / "run")
    shutil.copytree(tmp_path / "parked", tmp_path / "run")
    with pytest.raises(NekoError, match=r"step-00000002/model.safetensors: cannot read the weights"):
        train(load_config(config), resume=True)


def test_parked_weights_of_other_shapes_are_one_line_naming_the_tensor(tmp_path):
    config = stopped_run(tmp_path, steps=8, stop_after=3)
    park(tmp_path / "run", tmp_path / "parked")
    weights = tmp_path / "parked" / "checkpoints" / "step-00000002" / "model.safetensors"
    tensors = load_file(weights)
    name = next(n for n in tensors if n.endswith("embed_tokens.weight"))
    save_file({**tensors, name: tensors[name][:-1].contiguous()}, weights)
    shutil.rmtree(tmp_path / "run")
    shutil.copytree(tmp_path / "parked", tmp_path / "run")
    with pytest.raises(NekoError, match=rf"model.safetensors: weights of another model \({name} is \["):
        train(load_config(config), resume=True)


def test_a_run_with_no_checkpoint_yet_has_nothing_to_park(tmp_path):
    stopped_run(tmp_path, steps=8, stop_after=1)
    with pytest.raises(NekoError, match="no checkpoint and no finished model to park"):
        park(tmp_path / "run", tmp_path / "parked")
