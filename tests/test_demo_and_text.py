"""`neko demo` prints each example before and after; `neko data text` exports train-split text only."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from correct_fixtures import make_model_dir, script_outputs
from typer.testing import CliRunner

import neko.data.text as text_module
from neko.cli import _register_commands, app
from neko.correct import Corrector
from neko.data.formats import write_examples
from neko.data.schema import Example
from neko.data.sources import Sentence
from neko.data.splits import split_of
from neko.errors import NekoError

EXAMPLES = Path(__file__).parent / "fixtures" / "eval" / "data.jsonl"


def test_demo_prints_each_example_before_and_after_with_error_rates(tmp_path, monkeypatch):
    corrector = Corrector.from_pretrained(make_model_dir(tmp_path / "model", open_gate=True), device="cpu")
    ids = corrector.tokenizer.encode("the cat sat on the mat", add_special_tokens=False)
    undo = script_outputs(corrector.model, [*ids, corrector.eos_id])
    monkeypatch.setattr(Corrector, "from_pretrained", lambda *args, **kwargs: corrector)
    _register_commands()
    try:
        result = CliRunner().invoke(app, ["demo", "--examples", str(EXAMPLES)])
    finally:
        undo()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # a1 is one word from the scripted output: kept, WER 1/6 -> 0
    a1 = _block(lines, "asr · d1 · a1")
    assert a1 == [
        "recognizer  the cat sat on a mat",
        "neko        the cat sat on the mat",
        "reference   The cat sat on the mat.",
        "WER: 16.7 -> 0.0",
    ]
    # a2 shares little with the scripted output: the valve keeps the 1-best, WER 1/4 both
    assert _block(lines, "asr · d1 · a2") == [
        "recognizer  i have to dogs",
        "neko        i have to dogs (fell back to the 1-best)",
        "reference   I have 2 dogs",
        "WER: 25.0 -> 25.0",
    ]
    assert _block(lines, "ocr · ocr-set · o1")[-1] == "CER: 18.2 -> 18.2"
    # the table: asr 3 errors in 12 words before, 2 after (a1 fixed)
    assert re.search(r"asr\s*│\s*3\s*│\s*WER\s*│\s*25\.00\s*│\s*16\.67", result.output), result.output


def test_demo_of_a_model_without_one_of_the_tasks_shows_the_others_and_names_what_it_left_out(tmp_path):
    model = make_model_dir(tmp_path / "model", tasks=("asr", "ocr"))
    _register_commands()
    result = CliRunner().invoke(app, ["demo", "--model", str(model), "--examples", str(EXAMPLES), "-q"])
    assert result.exit_code == 0, result.output
    assert "was not trained for task 'st': its example is left out" in result.stderr
    assert "was not trained for task 'tec': its 2 examples are left out" in result.stderr
    assert "asr · d1 · a1" in result.stdout and "ocr · ocr-set · o1" in result.stdout
    assert "tec ·" not in result.stdout
    none_known = make_model_dir(tmp_path / "mt-only", tasks=("mt",))
    result = CliRunner().invoke(app, ["demo", "--model", str(none_known), "--examples", str(EXAMPLES)])
    assert isinstance(result.exception, NekoError)  # `neko` prints it as one line, rc 2
    assert str(result.exception).endswith("mt-only knows none of the examples' tasks (asr, st, ocr, tec)")


def _block(lines: list[str], title: str) -> list[str]:
    """The four lines the demo prints under the rule titled `title`."""
    start = next(i for i, line in enumerate(lines) if title in line)
    return [line.rstrip() for line in lines[start + 1 : start + 5]]


def test_text_export_keeps_only_train_split_sentences_and_their_translations(tmp_path, monkeypatch):
    pool = [
        Sentence(f"s{i}", f"Sentence number {i} of the pool.", "bible", f"Frase número {i}.")
        for i in range(60)
    ]

    def fake_sentences(name, split, max_words):
        return [s for s in pool if s.split == split and len(s.text.split()) <= max_words]

    monkeypatch.setattr(text_module, "sentences", fake_sentences)
    out = tmp_path / "text.txt.gz"
    held_out = tmp_path / "held-out.jsonl"
    write_examples(held_out, [Example(id="d1", task="tec", hypotheses=["x"], reference="Unrelated.")])
    _register_commands()
    result = CliRunner().invoke(
        app, ["data", "text", str(out), "--source", "bible", "--held-out", str(held_out)]
    )
    assert result.exit_code == 0, result.output
    with gzip.open(out, "rt") as handle:
        lines = handle.read().splitlines()
    train = [s for s in pool if split_of(s.text) == "train"]
    assert 0 < len(train) < len(pool)
    assert sorted(lines) == sorted([s.text for s in train] + [s.translation for s in train])
    english_only = text_module.pretraining_lines(["bible"], ["en"])
    assert sorted(english_only) == sorted(s.text for s in train)


def test_text_export_leaves_out_every_sentence_of_the_held_out_files(tmp_path, monkeypatch):
    pool = [
        Sentence(f"s{i}", f"Sentence number {i} of the pool.", "bible", f"Frase número {i}.")
        for i in range(60)
    ]
    train = [s for s in pool if split_of(s.text) == "train"]
    leaked_reference, leaked_source, leaked_translation, duplicate = train[:4]
    # a train-split sentence that another source also has is exported once
    copy = Sentence("copy", duplicate.text.upper(), "captions")
    monkeypatch.setattr(
        text_module, "sentences", lambda name, split, _: [s for s in [*pool, copy] if s.split == split]
    )
    held_out = tmp_path / "dev.jsonl"
    examples = [
        Example(id="a", task="tec", hypotheses=["x"], reference=leaked_reference.text.lower().rstrip(".")),
        Example(
            id="b",
            task="mt",
            hypotheses=["x"],
            reference=leaked_translation.translation,
            language_pair="en-es",
            metadata={"source_text": leaked_source.text},
        ),
    ]
    write_examples(held_out, examples)
    out = tmp_path / "text.txt"
    _register_commands()
    args = [
        "data",
        "text",
        str(out),
        "--source",
        "bible",
        "--source",
        "captions",
        "--held-out",
        str(held_out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    for gone in (leaked_reference.text, leaked_source.text, leaked_translation.translation):
        assert gone not in lines
    assert leaked_translation.text in lines and leaked_reference.translation in lines
    assert len([line for line in lines if line.lower() == duplicate.text.lower()]) == 1
    assert len(lines) == 2 * len(train) - 3


def test_the_default_held_out_files_are_every_dev_and_test_file_and_no_training_file():
    names = [str(p) for p in text_module.default_held_out()]
    assert not [name for name in names if "train" in Path(name).name]
    data = Path(text_module.CHECKOUT) / "data"
    for pattern in ("*/dev*.jsonl.gz", "*/test*.jsonl.gz", "*/*-dev.jsonl.gz", "*/*-test.jsonl.gz"):
        assert {str(p) for p in data.glob(pattern)} <= set(names)


def test_text_export_refuses_the_held_out_domain():
    _register_commands()
    result = CliRunner().invoke(app, ["data", "text", "x.txt", "--source", "fortunes"])
    assert result.exit_code != 0
    assert "cannot be exported" in str(result.exception)


def test_text_export_has_its_own_sentence_length(monkeypatch):
    lengths = range(2, 80)
    pool = [Sentence(f"s{n}", " ".join(["word"] * (n - 1) + [f"number{n}."]), "gcide") for n in lengths]
    asked = []

    def fake_sentences(name, split, max_words):
        asked.append(max_words)
        return [s for s in pool if s.split == split and len(s.text.split()) <= max_words]

    monkeypatch.setattr(text_module, "sentences", fake_sentences)
    train = {len(s.text.split()) for s in pool if s.split == "train"}
    lines = text_module.pretraining_lines(["gcide"], ["en"])
    assert {len(line.split()) for line in lines} == {n for n in train if 4 <= n <= 60}
    lines = text_module.pretraining_lines(["gcide"], ["en"], min_words=10, max_words=30)
    assert {len(line.split()) for line in lines} == {n for n in train if 10 <= n <= 30}
    assert asked == [60, 30]
    with pytest.raises(NekoError, match="--min-words"):
        text_module.pretraining_lines(["gcide"], ["en"], min_words=3)
