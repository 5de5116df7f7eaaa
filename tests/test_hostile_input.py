"""What a hostile but honest user tries (issue 14, defects 2, 3, 5 and 6): each is a one-line error
(exit 2, no traceback) before any work starts, or the right result; never a silent misread."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import neko
from neko.cli import main
from neko.correct.safety import SafetyValve
from neko.data.formats import read_examples, write_examples
from neko.data.schema import Example

README = Path(__file__).resolve().parents[1] / "README.md"
GOOD = {"id": "a", "task": "asr", "hypotheses": ["the cat sat", "a cat sat"], "reference": "a cat sat"}


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def neko_cli(capsys, monkeypatch):
    """Run `neko ARGS` in this process as the console script does (main's error handling included);
    an exception other than the exit would be a traceback for the user, and fails the test."""

    def run(*args: str, stdin: bytes = b"") -> Run:
        monkeypatch.setattr(sys, "argv", ["neko", *map(str, args)])
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 0
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def one_line_error(run: Run, *fragments: str) -> None:
    assert run.code == 2, (run.code, run.err)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- 2: duplicate ids ------------------------------------------------------------------------------


def test_validate_and_stats_refuse_a_repeated_id(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD, {**GOOD, "hypotheses": ["a cat sad", "a cat sat"]})
    one_line_error(neko_cli("data", "validate", data), "d.jsonl:2: id 'a' is used twice", "d.jsonl:1")
    one_line_error(neko_cli("data", "stats", data), "id 'a' is used twice")


def test_eval_refuses_a_repeated_id_before_running_the_model(neko_cli, tmp_path, model_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD, GOOD)
    out = tmp_path / "report"
    one_line_error(neko_cli("eval", data, "--model", model_path, "--out", out), "used twice")
    assert not out.exists()


def test_eval_refuses_an_id_shared_by_two_data_files(neko_cli, tmp_path):
    first = write_lines(tmp_path / "a.jsonl", GOOD)
    second = write_lines(tmp_path / "b.jsonl", GOOD)
    predictions = write_lines(tmp_path / "p.jsonl", {"id": "a", "correction": "a cat sat"})
    run = neko_cli("eval", first, second, "-p", predictions, "--out", tmp_path / "r")
    one_line_error(run, "b.jsonl: id 'a' is also an example of", "a.jsonl")


def test_eval_reads_every_predictions_file_before_running_the_model(neko_cli, tmp_path, model_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    broken = tmp_path / "p.jsonl"
    broken.write_bytes(b'{"id": "a", "correction": "\xff"}\n')
    out = tmp_path / "report"
    one_line_error(
        neko_cli("eval", data, "--model", model_path, "-p", f"x={broken}", "--out", out), "p.jsonl:1"
    )
    assert not out.exists()


# --- 3: silent misreads ----------------------------------------------------------------------------


def test_validate_refuses_an_unknown_task(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", {**GOOD, "task": "asrr"})
    one_line_error(neko_cli("data", "validate", data), "d.jsonl:1: unknown task 'asrr'")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("hypotheses", ["fine", "stop <|out|> here"], "field 'hypotheses[1]': holds '<|out|>'"),
        ("reference", "a <|asr|> b", "field 'reference': holds '<|asr|>'"),
        ("extra_references", ["ok", "<|pad|>"], "field 'extra_references[1]': holds '<|pad|>'"),
    ],
)
def test_text_written_like_a_marker_is_refused_naming_the_field(neko_cli, tmp_path, field, value, named):
    data = write_lines(tmp_path / "d.jsonl", GOOD, {**GOOD, "id": "b", field: value})
    one_line_error(neko_cli("data", "validate", data), f"d.jsonl:2: {named}", "markers")


def test_a_text_line_written_like_a_marker_is_refused_naming_its_line(neko_cli, tmp_path):
    text = tmp_path / "hyps.txt"
    text.write_text("hello world\nthe <|out|> cat\n")
    one_line_error(
        neko_cli("data", "validate", text, "--task", "asr"), "hyps.txt:2: field 'hypotheses[0]'", "markers"
    )


def test_empty_input_of_no_telling_name_is_refused_as_empty(neko_cli, tmp_path):
    one_line_error(
        neko_cli("data", "validate", "-", stdin=b"  \n"), "-: the file is empty; cannot tell its format"
    )
    (tmp_path / "notes").write_text("")
    one_line_error(neko_cli("data", "validate", tmp_path / "notes"), "notes: the file is empty")


def test_a_file_of_no_examples_is_refused_by_the_commands_that_need_some(neko_cli, tmp_path, model_path):
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    one_line_error(
        neko_cli("correct", empty, "--task", "asr", "--model", model_path), "none.jsonl: no examples"
    )
    one_line_error(neko_cli("data", "stats", empty, "--task", "asr"), "none.jsonl: no examples")
    evaluated = neko_cli("eval", empty, "--task", "asr", "--model", model_path, "--out", tmp_path / "r")
    one_line_error(evaluated, "none.jsonl: no examples")
    assert (
        "0 valid examples" in neko_cli("data", "validate", empty, "--task", "asr").out
    )  # a count, not a need


def test_brackets_in_an_error_are_printed_as_written(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", {**GOOD, "task": "[/usr/bin] [bold]x"})
    one_line_error(neko_cli("data", "validate", data), "d.jsonl:1: unknown task '[/usr/bin] [bold]x'")


def test_a_lone_surrogate_is_refused_by_every_command(neko_cli, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "task": "asr", "hypotheses": ["x \\ud800 y"]}\n')
    one_line_error(neko_cli("data", "validate", data), "d.jsonl:1", "lone surrogate")
    one_line_error(neko_cli("data", "convert", data, tmp_path / "out.json", "--to", "gensec"), "surrogate")
    assert not (tmp_path / "out.json").exists()


def test_a_byte_order_mark_is_dropped_by_every_reader(tmp_path):
    record = {"id": "u1", "input": ["a b", "a c"], "output": "a b"}
    (tmp_path / "h.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([record]).encode())
    [example] = read_examples(tmp_path / "h.json", task="asr")
    assert example.hypotheses == ["a b", "a c"] and example.reference == "a b"
    (tmp_path / "t.txt").write_bytes(b"\xef\xbb\xbfhello world\nsecond\n")
    assert read_examples(tmp_path / "t.txt", task="asr")[0].hypotheses == ["hello world"]
    (tmp_path / "n.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert read_examples(tmp_path / "n.jsonl")[0].id == "a"


def test_standard_input_is_detected_like_a_file(neko_cli):
    run = neko_cli("data", "validate", "-", stdin=(json.dumps(GOOD) + "\n").encode())
    assert run.code == 0, run.err
    assert "1 valid examples" in run.out and "asr: 1" in run.out
    hyporadise = json.dumps([{"input": ["a b", "a c"], "output": "a b"}]).encode()
    run = neko_cli("data", "convert", "-", "-", "--task", "asr", stdin=b"\xef\xbb\xbf" + hyporadise)
    assert run.code == 0, run.err
    assert json.loads(run.out)["hypotheses"] == ["a b", "a c"]
    run = neko_cli("data", "convert", "-", "-", "--task", "ocr", stdin=b"plain text\n")
    assert json.loads(run.out)["hypotheses"] == ["plain text"]


def test_text_lines_split_on_newline_only(tmp_path):
    (tmp_path / "t.txt").write_text("one\ftwo\nthree\u2028four\x85five\r\nsix\n", encoding="utf-8")
    examples = read_examples(tmp_path / "t.txt", task="ocr")
    assert [e.hypotheses[0] for e in examples] == ["one\ftwo", "three\u2028four\x85five", "six"]
    assert [e.id for e in examples] == ["t-1", "t-2", "t-3"]


def test_neko_reads_back_every_line_separator_it_writes(neko_cli, tmp_path):
    example = Example("a", "asr", ["x\u2028y", "x\x85y\u2029z"], reference="x\x1cy")
    write_examples(tmp_path / "d.jsonl", [example])
    assert "\u2028" not in (tmp_path / "d.jsonl").read_text(encoding="utf-8")
    assert read_examples(tmp_path / "d.jsonl") == [example]
    run = neko_cli("data", "validate", tmp_path / "d.jsonl")
    assert run.code == 0 and "1 valid examples" in run.out


def test_text_in_text_out_keeps_blank_lines_in_place(neko_cli, tmp_path, model_path):
    source = tmp_path / "in.txt"
    source.write_text("the cat sad\n\n   \na cat sat\n\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    run = neko_cli("correct", source, "-m", model_path, "--task", "asr", "--output-format", "text", "-o", out)
    assert run.code == 0, run.err
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[5] == ""  # five lines, each ended by a newline
    assert lines[0] and lines[1] == lines[2] == lines[4] == "" and lines[3]
    assert "corrected 2 examples" in run.err


# --- 5: tracebacks instead of messages -------------------------------------------------------------


@pytest.mark.parametrize("place", ["folder", "file/under"])
def test_correct_refuses_an_unwritable_out_before_the_work(neko_cli, tmp_path, model_path, place):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("keep me\n")
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    run = neko_cli("correct", source, "-m", model_path, "--out", tmp_path / place)
    one_line_error(run, "is a folder" if place == "folder" else "is a file, not a folder")
    assert "corrected" not in run.err and (tmp_path / "file").read_text() == "keep me\n"


def test_convert_and_eval_refuse_an_unwritable_out(neko_cli, tmp_path):
    (tmp_path / "file").write_text("x")
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    one_line_error(neko_cli("data", "convert", data, tmp_path / "file" / "o.jsonl"), "not a folder")
    predictions = write_lines(tmp_path / "p.jsonl", {"id": "a", "correction": "a cat sat"})
    one_line_error(neko_cli("eval", data, "-p", predictions, "--out", tmp_path / "file"), "expected a folder")


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", lambda data: b"garbage"),
        ("model.safetensors", lambda data: data[:1000]),
        ("tokenizer.json", lambda data: data[:100]),
        ("tokenizer.json", lambda data: b'{"version": "1.0", "model": 3}'),
        ("neko.json", lambda data: b"\xff\xfe garbage"),
        ("neko.json", lambda data: data[:20]),
    ],
)
def test_a_damaged_model_file_is_a_one_line_error(neko_cli, tmp_path, model_path, name, damage):
    broken = tmp_path / "broken"
    shutil.copytree(model_path, broken)
    (broken / name).write_bytes(damage((broken / name).read_bytes()))
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    one_line_error(neko_cli("correct", source, "-m", broken), "broken")


def _drop_first_expert_tensor(tensors: dict) -> dict:
    name = next(n for n in tensors if ".experts." in n)
    return {n: t for n, t in tensors.items() if n != name}


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda tensors: {"x": torch.zeros(1)}, "tensors are missing from the weights"),
        (_drop_first_expert_tensor, "do not fit its config.json"),
        (lambda tensors: {**tensors, "model.norm.weight": torch.zeros(3)}, "of another shape"),
    ],
    ids=["none-of-its-tensors", "a-tensor-missing", "a-tensor-of-another-shape"],
)
def test_weights_that_do_not_fit_the_model_are_a_one_line_error(
    neko_cli, tmp_path, model_path, damage, fragment
):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(model_path, broken)
    save_file(damage(load_file(broken / "model.safetensors")), broken / "model.safetensors")
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    run = neko_cli("correct", source, "-m", broken)
    one_line_error(run, "broken: cannot load the model", fragment)
    assert run.out == ""  # nothing corrected by a model with random weights


def test_correct_and_convert_refuse_to_write_over_their_input(neko_cli, tmp_path, model_path):
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    before = source.read_bytes()
    one_line_error(neko_cli("correct", source, "-m", model_path, "--out", source), "is the input file")
    (tmp_path / "link.jsonl").symlink_to(source)
    one_line_error(neko_cli("data", "convert", source, tmp_path / "link.jsonl"), "is the input file")
    assert source.read_bytes() == before


def test_a_pipe_is_written_into_not_replaced(neko_cli, tmp_path, model_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    run = neko_cli("data", "convert", source, pipe, "--to", "jsonl")
    reader.join(30)
    assert run.code == 0, run.err
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)  # still the pipe, not a file in its place
    assert [json.loads(line)["id"] for line in received[0].decode().splitlines()] == ["a"]


def test_a_run_folder_that_is_a_file_is_a_one_line_error(neko_cli, tmp_path):
    (tmp_path / "taken").write_text("keep me\n")
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"tasks: [asr]\ndata: {{train: [{data}], dev: [{data}]}}\nrun: {{out_dir: {tmp_path / 'taken'}}}\n"
    )
    one_line_error(neko_cli("train", config), "taken: is a file, expected a folder")
    assert (tmp_path / "taken").read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("correct", "d.jsonl", "--batch-size", "-1"), "'--batch-size'"),
        (("correct", "--no-such-option"), "No such option: --no-such-option"),
        (("corect",), "No such command 'corect'"),
    ],
)
def test_a_usage_mistake_is_one_line_naming_the_help(neko_cli, args, fragment):
    one_line_error(neko_cli(*args), fragment, "--help')")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(neko_cli, tmp_path, model_path):
    source = write_lines(tmp_path / "d.jsonl", GOOD)
    one_line_error(neko_cli("correct", source, "-m", model_path, "--device", "cuda"), "CUDA is not available")
    one_line_error(neko_cli("correct", source, "-m", model_path, "--device", "tpu"), "unknown device 'tpu'")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"id": "a", "correction": "\xe9t\xe9"}\n', "p.jsonl.gz:1: not UTF-8"),
        (
            gzip.compress(b"".join(b'{"id": "%d", "correction": "x"}\n' % i for i in range(50)))[:-10],
            "truncated",
        ),
    ],
    ids=["not-utf-8", "truncated"],
)
def test_a_broken_predictions_file_is_a_one_line_error(neko_cli, tmp_path, content, fragment):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    predictions = tmp_path / "p.jsonl.gz"
    predictions.write_bytes(gzip.compress(content) if content[:2] != b"\x1f\x8b" else content)
    one_line_error(neko_cli("eval", data, "-p", predictions, "--out", tmp_path / "r"), fragment)


def test_gleu_iterations_must_be_positive(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    predictions = write_lines(tmp_path / "p.jsonl", {"id": "a", "correction": "a cat sat"})
    run = neko_cli("eval", data, "-p", predictions, "--out", tmp_path / "r", "--gleu-iterations", "0")
    assert run.code == 2 and "--gleu-iterations" in run.err and "Traceback" not in run.err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 5000, "nested more than 100 levels deep"),
        (json.dumps({**GOOD, "metadata": {"n": 0}}).replace("0", "7" * 5000), "a number too long"),
    ],
    ids=["deep", "long-number"],
)
def test_hostile_json_documents(neko_cli, tmp_path, content, fragment):
    (tmp_path / "d.jsonl").write_text(content + "\n")
    one_line_error(neko_cli("data", "validate", tmp_path / "d.jsonl"), "d.jsonl", fragment)
    (tmp_path / "h.json").write_text(content + "\n")
    one_line_error(
        neko_cli("data", "validate", tmp_path / "h.json", "-f", "hyporadise", "-t", "asr"), fragment
    )


# --- 6: smaller ------------------------------------------------------------------------------------


def test_outputs_keep_permissions_and_symlinks(neko_cli, tmp_path, model_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    kept = tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(kept)
    assert neko_cli("data", "convert", data, link).code == 0
    assert link.is_symlink() and read_examples(kept)[0].id == "a"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    out = tmp_path / "corrected.jsonl"
    assert neko_cli("correct", data, "-m", model_path, "-o", out).code == 0
    assert stat.S_IMODE(out.stat().st_mode) & 0o044 == 0o044  # readable by others, as umask 022 gives


def test_tune_gate_and_demo_take_the_task_they_ask_for(neko_cli, tmp_path, model_path):
    hyporadise = tmp_path / "dev.json"
    hyporadise.write_text(json.dumps([{"id": "h1", "input": ["the cat sat"], "output": "the cat sat"}]))
    one_line_error(neko_cli("tune-gate", hyporadise, "-m", model_path), "pass --task")
    run = neko_cli("tune-gate", hyporadise, "-m", model_path, "--task", "asr", "--batch-size", "1")
    assert run.code == 0, run.err
    assert "asr" in run.out
    one_line_error(neko_cli("demo", "-m", model_path, "--examples", hyporadise), "pass --task")
    run = neko_cli("demo", "-m", model_path, "--examples", hyporadise, "--task", "asr")
    assert run.code == 0, run.err
    assert "the cat sat" in run.out


def test_version(neko_cli):
    run = neko_cli("--version")
    assert run.code == 0 and run.out.strip() == f"neko {neko.__version__}"


def test_readme_states_the_edit_allowance():
    slack = SafetyValve().length_slack
    assert f"fixed allowance of {slack} characters" in README.read_text(encoding="utf-8")


def test_converting_to_text_says_what_the_text_format_cannot_keep(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    run = neko_cli("data", "convert", data, tmp_path / "o.txt")
    assert run.code == 0 and (tmp_path / "o.txt").read_text() == "the cat sat\n"
    assert "left out 1 further hypotheses and 1 references" in run.err


def test_eval_refuses_a_predictions_name_without_a_file_and_an_empty_limit(neko_cli, tmp_path):
    data = write_lines(tmp_path / "d.jsonl", GOOD)
    one_line_error(neko_cli("eval", data, "-p", "x=", "--out", tmp_path / "r"), "'x=': no file after x=")
    predictions = write_lines(tmp_path / "p.jsonl", {"id": "a", "correction": "a cat sat"})
    run = neko_cli("eval", data, "-p", predictions, "--out", tmp_path / "r", "--limit-per-dataset", "0")
    one_line_error(run, "'--limit-per-dataset'")
