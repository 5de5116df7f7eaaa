"""Format adapters: reading, detection, round trips, one-line errors, and the `neko data` commands."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neko.data.formats import FORMATS, detect_format, read_examples, write_examples
from neko.data.schema import Example
from neko.errors import NekoError

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
NEKO = Path(sys.executable).parent / "neko"


def _examples() -> list[Example]:
    """Examples using every field, of several tasks."""
    return [
        Example(
            id="u1",
            task="asr",
            hypotheses=["i red it", "i read it"],
            reference="i read it",
            dataset="captions/flite",
            metadata={"am_score": [-0.5, -0.7], "voice": "kal"},
        ),
        Example(
            id="u2",
            task="st",
            hypotheses=["hola mundo"],
            reference="hola, mundo",
            language_pair="en-es",
            dataset="st/dev",
            metadata={"input2": ["hello world"]},
        ),
        Example(
            id="u3",
            task="tec",
            hypotheses=["he go home"],
            reference="he goes home",
            extra_references=["he went home"],
        ),
        Example(id="u4", task="ocr", hypotheses=["Tbe end"]),
    ]


# --- reading the real layouts ----------------------------------------------------------------------


def test_hyporadise_maps_fields_and_keeps_extras_in_metadata():
    examples = read_examples(FIXTURES / "hyporadise_asr.json", task="asr")
    assert [e.id for e in examples] == ["a01", "a02", "hyporadise_asr-2"]
    first = examples[0]
    assert first.task == "asr"
    assert first.hypotheses[1] == "show me flight from boston to denver"
    assert first.reference == "show me flights from boston to denver"
    assert first.metadata == {"am_score": [-0.21, -0.34, -0.52]}
    assert first.dataset == "hyporadise_asr"
    assert examples[2].metadata["data_source"] == "test_atis.json"


def test_hyporadise_translation_variant():
    examples = read_examples(FIXTURES / "hyporadise_st.json", task="st", dataset="st/test")
    assert examples[0].hypotheses == ["el gato está en la mesa", "el gato esta en la mesa"]
    assert examples[0].metadata == {"input2": ["the cat is on the table", "the cat is on a table"]}
    assert {e.dataset for e in examples} == {"st/test"}


def test_gensec_maps_fields():
    examples = read_examples(FIXTURES / "gensec_task1.jsonl", task="asr")
    assert detect_format(FIXTURES / "gensec_task1.jsonl") == "gensec"
    first, second = examples
    assert first.id == "gensec_task1-1" and second.id == "gensec_task1-2"
    assert first.reference == "he went to the store yesterday"
    assert first.dataset == "test_chime4"
    assert first.metadata == {}  # input1 equals the best hypothesis: rewritten on output
    assert second.hypotheses == ["i red the book", "i read the book"]


def test_text_one_hypothesis_per_line_with_line_ids():
    examples = read_examples(FIXTURES / "asr_lines.txt", task="asr")
    assert [e.id for e in examples] == ["asr_lines-1", "asr_lines-3"]
    assert examples[1].hypotheses == ["she sells see shells by the sea shore"]
    assert examples[0].reference is None


def test_text_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("one line\n\nanother\n"))
    examples = read_examples("-", task="ocr")
    assert [(e.id, e.hypotheses, e.dataset) for e in examples] == [
        ("stdin-1", ["one line"], "default"),
        ("stdin-3", ["another"], "default"),
    ]


def test_native_jsonl():
    examples = read_examples(FIXTURES / "native.jsonl")
    assert [e.task for e in examples] == ["ocr", "st", "tec"]
    assert examples[2].references == ["he goes home", "he went home"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("native.jsonl", "jsonl"),
        ("hyporadise_asr.json", "hyporadise"),
        ("hyporadise_st.json", "hyporadise"),
        ("gensec_task1.jsonl", "gensec"),
        ("asr_lines.txt", "text"),
    ],
)
def test_detection(name, expected):
    assert detect_format(FIXTURES / name) == expected


def test_detection_by_content_without_extension(tmp_path):
    (tmp_path / "nbest").write_text(json.dumps([{"input": ["a b"], "output": "a b"}]))
    (tmp_path / "lines").write_text("plain words\n")
    assert detect_format(tmp_path / "nbest") == "hyporadise"
    assert detect_format(tmp_path / "lines") == "text"


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "format"),
    [
        ("out.jsonl", None),
        ("out.jsonl.gz", None),
        ("out.json", "hyporadise"),
        ("out.jsonl", "hyporadise"),
        ("out.json", "gensec"),
        ("out.jsonl.gz", "gensec"),
    ],
)
def test_round_trip_keeps_every_field(tmp_path, file_name, format):
    path = tmp_path / file_name
    assert write_examples(path, _examples(), format=format) == 4
    assert read_examples(path) == _examples()  # detected, and no task= needed for files neko wrote
    assert read_examples(path, format=format or "jsonl") == _examples()


def test_gensec_keeps_a_differing_input1(tmp_path):
    record = {"hypothesis": ["a b", "a c"], "transcription": "a c", "input1": "a d", "source": "x"}
    (tmp_path / "in.json").write_text(json.dumps([record]))
    examples = read_examples(tmp_path / "in.json", task="asr")
    assert examples[0].metadata == {"input1": "a d"}
    write_examples(tmp_path / "out.json", examples, format="gensec")
    assert json.loads((tmp_path / "out.json").read_text())[0]["input1"] == "a d"
    assert read_examples(tmp_path / "out.json") == examples


def test_real_hyporadise_records_round_trip(tmp_path):
    original = read_examples(FIXTURES / "hyporadise_st.json", task="st")
    write_examples(tmp_path / "st.json", original, format="hyporadise")
    written = json.loads((tmp_path / "st.json").read_text())
    assert set(written[0]) >= {"input1", "input2", "output"}  # the translation variant is kept
    assert read_examples(tmp_path / "st.json") == original


def test_text_round_trip_keeps_best_hypotheses(tmp_path):
    path = tmp_path / "lines.txt"
    original = [
        Example(id=f"lines-{n}", task="asr", hypotheses=[f"line {n}"], dataset="lines") for n in (1, 2)
    ]
    write_examples(path, original)
    assert path.read_text() == "line 1\nline 2\n"
    assert read_examples(path, task="asr") == original
    # What text cannot hold is dropped: only the best hypothesis of each example is written.
    write_examples(path, _examples())
    assert [e.hypotheses for e in read_examples(path, task="asr")] == [
        [e.best_hypothesis] for e in _examples()
    ]


def test_gzip_json(tmp_path):
    path = tmp_path / "nbest.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump([{"input": ["x y"], "output": "x y"}], out)
    assert read_examples(path, task="asr")[0].id == "nbest-0"


def test_write_to_stdout(capsys):
    write_examples("-", _examples()[:1])
    assert json.loads(capsys.readouterr().out)["id"] == "u1"


# --- errors ----------------------------------------------------------------------------------------


def _error(path, **kwargs) -> str:
    with pytest.raises(NekoError) as raised:
        read_examples(path, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_task_is_a_clear_error():
    assert "does not record the task; pass --task" in _error(FIXTURES / "hyporadise_asr.json")
    assert "pass --task" in _error(FIXTURES / "asr_lines.txt")
    assert "unknown task 'asrr'" in _error(FIXTURES / "asr_lines.txt", task="asrr")


def test_given_task_must_agree_with_the_file():
    assert "native.jsonl:1: field 'task' is 'ocr' but task 'asr' was given" in _error(
        FIXTURES / "native.jsonl", task="asr"
    )


@pytest.mark.parametrize(
    ("name", "content", "format", "expected"),
    [
        (
            "a.json",
            '[{"input": ["a"]},\n {"input": 3}]',
            "hyporadise",
            "a.json[1]: field 'input' must be a list",
        ),
        (
            "b.json",
            '[{"input": ["a"]},\n {"input": ["b"] "output": "c"}]',
            "hyporadise",
            "b.json:2: not valid JSON",
        ),
        ("c.json", '[{"output": "a"}]', "hyporadise", "c.json[0]: missing field 'input'"),
        ("d.json", '[{"input": []}]', "hyporadise", "d.json[0]: field 'input' is empty"),
        (
            "e.jsonl",
            '{"hypothesis": ["a"]}\n{"hypothesis": ["b"], "source": 7}\n',
            "gensec",
            "e.jsonl:2: field 'source'",
        ),
        (
            "f.jsonl",
            '{"hypothesis": ["a"], "transcription": ["a"]}\n',
            "gensec",
            "f.jsonl:1: field 'transcription'",
        ),
        ("g.jsonl", '{"id": "x", "task": "asr"}\n', "jsonl", "g.jsonl:1: missing field 'hypotheses'"),
        ("h.json", "[1, 2]", "hyporadise", "h.json[0]: expected a JSON object"),
    ],
)
def test_malformed_input_names_place_and_field(tmp_path, name, content, format, expected):
    path = tmp_path / name
    path.write_text(content)
    assert expected in _error(path, format=format, task="asr")


def test_unknown_format_and_missing_file(tmp_path):
    assert "unknown format 'csv'" in _error(FIXTURES / "native.jsonl", format="csv")
    assert "no such file" in _error(tmp_path / "absent.jsonl")
    (tmp_path / "odd.json").write_text('[{"text": "a"}]')
    assert "cannot tell the format" in _error(tmp_path / "odd.json")
    with pytest.raises(NekoError, match="pass --to"):
        write_examples(tmp_path / "out.json", _examples())


def test_write_refuses_what_the_format_cannot_hold(tmp_path):
    clash = Example(id="c", task="asr", hypotheses=["a"], metadata={"output": "b"})
    with pytest.raises(NekoError, match="metadata key 'output' clashes"):
        write_examples(tmp_path / "out.json", [clash], format="hyporadise")
    with pytest.raises(NekoError, match="cannot be written as one line"):
        write_examples(tmp_path / "out.txt", [Example(id="n", task="asr", hypotheses=["a\nb"])])
    assert not (tmp_path / "out.txt").exists()


def test_formats_listed():
    assert FORMATS == ("jsonl", "hyporadise", "gensec", "text")


# --- commands --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    from neko.cli import _register_commands, app

    if not any(group.name == "data" for group in app.registered_groups):
        _register_commands()
    return app


def test_validate_counts_per_task(cli):
    result = CliRunner().invoke(cli, ["data", "validate", str(FIXTURES / "native.jsonl")])
    assert result.exit_code == 0, result.output
    assert "3 valid examples" in result.output
    assert "ocr: 1" in result.output and "st: 1" in result.output and "tec: 1" in result.output


def test_convert_between_formats(cli, tmp_path):
    target = tmp_path / "atis.jsonl"
    result = CliRunner().invoke(
        cli, ["data", "convert", str(FIXTURES / "hyporadise_asr.json"), str(target), "--task", "asr"]
    )
    assert result.exit_code == 0, result.output
    assert read_examples(target) == read_examples(FIXTURES / "hyporadise_asr.json", task="asr")
    back = tmp_path / "atis.json"
    result = CliRunner().invoke(cli, ["data", "convert", str(target), str(back), "--to", "hyporadise"])
    assert result.exit_code == 0, result.output
    assert read_examples(back) == read_examples(target)


def _run_neko(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(NEKO), *args], capture_output=True, text=True, cwd=cwd, env=env, check=False)


def test_malformed_file_prints_one_error_line_and_exits_2(tmp_path):
    (tmp_path / "bad.json").write_text('[{"input": ["a"], "output": "a"},\n {"input": "b", "output": 3}]')
    result = _run_neko("data", "validate", "bad.json", "--task", "asr", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "error: bad.json[1]: field 'output' must be a string, got int"
    assert "Traceback" not in result.stderr


def test_convert_from_stdin_to_stdout(tmp_path):
    result = subprocess.run(
        [str(NEKO), "data", "convert", "-", "-", "--task", "asr"],
        input="first line\nsecond line\n",
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["stdin-1", "stdin-2"]
