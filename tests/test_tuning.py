"""The safety valve's per-task settings (`max_edit_rate`, `fallback`): read from neko.json, tuned on dev
data, `neko tune-valve`."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from correct_fixtures import make_model_dir, script_outputs
from typer.testing import CliRunner

from neko.cli import _register_commands, app
from neko.correct import Corrector
from neko.correct.corrector import Correction
from neko.correct.model_dir import FALLBACKS, read_model_info
from neko.correct.tuning import CANDIDATE_RATES, save_valve_settings, tune_task, tune_valve
from neko.data.jsonl import write_jsonl
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.metrics import Scorer

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
    tuning = tune_valve(corrector, DEV)["asr"]
    trials = {(trial.fallback, trial.rate): trial for trial in tuning.trials}
    assert list(trials) == [(fallback, rate) for fallback in FALLBACKS for rate in CANDIDATE_RATES]
    assert tuning.metric == "wer" and tuning.examples == 2
    assert tuning.one_best == pytest.approx(100 / 10)  # 1 error in 10 reference words
    assert trials["1-best", 0.0].fallbacks == 1 and trials["1-best", 0.0].score == 0.0  # the good edit only
    assert trials["1-best", None].fallbacks == 0 and trials["1-best", None].score > tuning.one_best
    # one hypothesis each: the rerank is the 1-best, and ties go to the 1-best fallback
    assert (tuning.best.fallback, tuning.best.rate) == ("1-best", 0.0)


def test_the_rerank_fallback_wins_where_the_model_tells_readings_apart():
    example = Example("x", "ocr", ["tbe cat", "the cat"], reference="the cat")
    rejected = Correction("x", "ocr", "tbe cat", fell_back=True, reason="unrelated", output="a dog")
    tuning = tune_task("ocr", [(example, rejected, "the cat")], CANDIDATE_RATES, Scorer(errant=False))
    assert tuning.one_best > 0 and (tuning.best.fallback, tuning.best.score) == ("rerank", 0.0)


def test_rejected_outputs_of_rerank_tasks_take_the_models_pick(scripted, monkeypatch):
    corrector, path = scripted
    info = replace(read_model_info(path), max_edit_rate={"ocr": 0.0, "asr": 0.0}, fallback={"ocr": "rerank"})
    tuned = Corrector(corrector.model, corrector.tokenizer, info)
    monkeypatch.setattr(
        tuned, "_pick", lambda items, batch_size, per_token: [h[-1] for h in (i.hypotheses for i in items)]
    )
    hypotheses = ["a dog ran far away from home", "a dog ran far away from hone"]
    ocr, asr = tuned.correct([Example("o", "ocr", hypotheses), Example("a", "asr", hypotheses)])
    assert (ocr.fell_back, ocr.text, ocr.output) == (True, hypotheses[1], SCRIPT)
    assert (asr.fell_back, asr.text) == (True, hypotheses[0])
    assert tuned.fallback_target([ocr]) == "the rerank"
    assert tuned.fallback_target([ocr, asr]) == "the 1-best or the rerank"


def test_tuned_rates_are_saved_and_used_per_task(scripted):
    corrector, path = scripted
    save_valve_settings(path, tune_valve(corrector, DEV))
    assert read_model_info(path).max_edit_rate == {"asr": 0.0}
    assert read_model_info(path).fallback == {"asr": "1-best"}
    info = read_model_info(path)
    tuned = Corrector(
        corrector.model, corrector.tokenizer, replace(info, max_edit_rate={"asr": 0.0, "tec": None})
    )
    asr, tec = tuned.correct([Example(task, task, DEV[1].hypotheses) for task in ("asr", "tec")])
    assert (asr.fell_back, asr.reason, asr.text) == (True, "unrelated", DEV[1].hypotheses[0])
    assert (tec.fell_back, tec.text) == (False, SCRIPT)  # no edit limit for tec


def test_bad_valve_settings_are_one_line(tmp_path):
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
    for fallbacks, message in [
        ({"asr": "oracle"}, "must be one of 1-best, rerank"),
        ({"xyz": "rerank"}, "not one of the model's tasks"),
    ]:
        (path / "neko.json").write_text(json.dumps(info | {"fallback": fallbacks}))
        with pytest.raises(NekoError, match=message):
            read_model_info(path)


def test_tune_valve_command_writes_the_chosen_rates(scripted, tmp_path, monkeypatch):
    corrector, path = scripted
    examples = [*DEV, Example("t", "tec", ["he go home"], reference="he goes home")]
    dev = tmp_path / "dev.jsonl"
    write_jsonl(dev, examples)
    expected = tune_valve(corrector, examples)
    monkeypatch.setattr(Corrector, "from_pretrained", lambda *args, **kwargs: corrector)
    if not any(command.name == "tune-valve" for command in app.registered_commands):
        _register_commands()
    runner = CliRunner()
    result = runner.invoke(app, ["tune-valve", str(dev), "--model", str(path)])
    assert result.exit_code == 0, result.output
    assert "asr: wer on 2 dev examples (1-best 10.00)" in result.stdout
    assert "tec: gleu on 1 dev examples" in result.stdout
    chosen = [line for line in result.stdout.splitlines() if "chosen" in line]
    assert len(chosen) == 2
    assert re.search(r"\b0\s*│\s*1-best\s*│\s*0\.00\s*│\s*1\s*│\s*chosen", chosen[0]), chosen[0]
    assert read_model_info(path).max_edit_rate == {}  # a dry run by default
    result = runner.invoke(app, ["tune-valve", str(dev), "--model", str(path), "--write"])
    assert result.exit_code == 0, result.output
    info = read_model_info(path)
    assert info.max_edit_rate == {task: tuning.best.rate for task, tuning in expected.items()}
    assert info.fallback == {task: tuning.best.fallback for task, tuning in expected.items()}
    assert (info.max_edit_rate["asr"], info.fallback["asr"]) == (0.0, "1-best")
