"""The safety valve's per-task `max_edit_rate`: read from neko.json, tuned on dev data, `neko tune-valve`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from correct_fixtures import make_model_dir, script_outputs
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct import Corrector
from neko.correct.model_dir import read_model_info
from neko.correct.tuning import CANDIDATE_RATES, save_edit_rates, tune_edit_rates
from neko.data.jsonl import write_jsonl
from neko.data.schema import Example
from neko.errors import NekoError

SCRIPT = "the cat sat"
# The scripted output is one edit from the first example's hypothesis and its reference, and far from
# the second, whose hypothesis is already right: only a strict valve keeps the good edit alone.
DEV = [
    Example("near", "asr", ["the cat sad"], reference="the cat sat"),
    Example("far", "asr", ["a dog ran far away from home"], reference="a dog ran far away from home"),
]


@pytest.fixture
def scripted(tmp_path):
    """A corrector whose every output is SCRIPT, and its model directory."""
    path = make_model_dir(tmp_path / "model")
    corrector = Corrector.from_pretrained(path, device="cpu")
    ids = corrector.tokenizer.encode(SCRIPT, add_special_tokens=False)
    undo = script_outputs(corrector.model, [*ids, corrector.eos_id])
    yield corrector, path
    undo()


def test_tuning_keeps_the_strictest_rate_with_the_best_score(scripted):
    corrector, _ = scripted
    tuning = tune_edit_rates(corrector, DEV)["asr"]
    trials = {trial.rate: trial for trial in tuning.trials}
    assert [trial.rate for trial in tuning.trials] == list(CANDIDATE_RATES)
    assert tuning.metric == "wer" and tuning.examples == 2
    assert tuning.one_best == pytest.approx(100 / 10)  # 1 error in 10 reference words
    assert trials[0.0].fallbacks == 1 and trials[0.0].score == 0.0  # the good edit only
    assert trials[None].fallbacks == 0 and trials[None].score > tuning.one_best
    assert tuning.best.rate == 0.0


def test_tuned_rates_are_saved_and_used_per_task(scripted):
    corrector, path = scripted
    save_edit_rates(path, tune_edit_rates(corrector, DEV))
    assert read_model_info(path).max_edit_rate == {"asr": 0.0}
    info = read_model_info(path)
    tuned = Corrector(
        corrector.model, corrector.tokenizer, replace(info, max_edit_rate={"asr": 0.0, "tec": None})
    )
    asr, tec = tuned.correct([Example(task, task, DEV[1].hypotheses) for task in ("asr", "tec")])
    assert (asr.fell_back, asr.reason, asr.text) == (True, "unrelated", DEV[1].hypotheses[0])
    assert (tec.fell_back, tec.text) == (False, SCRIPT)  # no edit limit for tec


def test_bad_max_edit_rate_is_one_line(tmp_path):
    path = make_model_dir(tmp_path / "model")
    info = json.loads((path / "neko.json").read_text())
    for rates, message in [
        ({"xyz": 0.1}, "not one of the model's tasks"),
        ({"asr": -1}, "must be a number >= 0 or null"),
        ([0.1], "must map task names"),
    ]:
        (path / "neko.json").write_text(json.dumps(info | {"max_edit_rate": rates}))
        with pytest.raises(NekoError, match=message):
            read_model_info(path)


def test_tune_valve_command_writes_the_chosen_rates(tmp_path):
    path = make_model_dir(tmp_path / "model", max_new_tokens=4)
    dev = tmp_path / "dev.jsonl"
    write_jsonl(dev, [*DEV, Example("t", "tec", ["he go home"], reference="he goes home")])
    if not any(command.name == "tune-valve" for command in app.registered_commands):
        _register_commands()
    runner = CliRunner()
    result = runner.invoke(app, ["tune-valve", str(dev), "--model", str(path)])
    assert result.exit_code == 0, result.output
    assert "asr: wer on 2 dev examples" in result.stdout and "tec: gleu on 1 dev examples" in result.stdout
    assert read_model_info(path).max_edit_rate == {}  # a dry run by default
    result = runner.invoke(app, ["tune-valve", str(dev), "--model", str(path), "--write"])
    assert result.exit_code == 0, result.output
    assert set(read_model_info(path).max_edit_rate) == {"asr", "tec"}
    assert set(read_model_info(path).max_edit_rate.values()) <= set(CANDIDATE_RATES)
