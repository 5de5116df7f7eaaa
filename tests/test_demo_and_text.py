"""`neko demo` prints each example before and after; `neko data text` exports train-split text only."""

from __future__ import annotations

import gzip
from pathlib import Path

from correct_fixtures import make_model_dir
from typer.testing import CliRunner

import neko.data.text as text_module
from neko.cli import _register_commands, app
from neko.data.sources import Sentence
from neko.data.splits import split_of

EXAMPLES = Path(__file__).parent / "fixtures" / "eval" / "data.jsonl"


def test_demo_prints_each_example_before_and_after_with_error_rates(tmp_path):
    _register_commands()
    model = make_model_dir(tmp_path / "model")
    result = CliRunner().invoke(app, ["demo", "--model", str(model), "--examples", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    for word in ("recognizer", "neko", "reference", "WER:", "CER:", "BLEU:", "GLEU:", "1-best"):
        assert word in result.output


def test_text_export_keeps_only_train_split_sentences_and_their_translations(tmp_path, monkeypatch):
    pool = [
        Sentence(f"s{i}", f"Sentence number {i} of the pool.", "bible", f"Frase número {i}.")
        for i in range(60)
    ]

    def fake_sentences(name, split):
        return [s for s in pool if s.split == split]

    monkeypatch.setattr(text_module, "sentences", fake_sentences)
    out = tmp_path / "text.txt.gz"
    _register_commands()
    result = CliRunner().invoke(app, ["data", "text", str(out), "--source", "bible"])
    assert result.exit_code == 0, result.output
    with gzip.open(out, "rt") as handle:
        lines = handle.read().splitlines()
    train = [s for s in pool if split_of(s.text) == "train"]
    assert 0 < len(train) < len(pool)
    assert sorted(lines) == sorted([s.text for s in train] + [s.translation for s in train])
    english_only = text_module.pretraining_lines(["bible"], ["en"])
    assert sorted(english_only) == sorted(s.text for s in train)


def test_text_export_refuses_the_held_out_domain():
    _register_commands()
    result = CliRunner().invoke(app, ["data", "text", "x.txt", "--source", "fortunes"])
    assert result.exit_code != 0
    assert "cannot be exported" in str(result.exception)
