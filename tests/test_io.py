"""neko.io and the format readers/writers on top of it: atomic writes, strict reading, and
property-based tests (random examples round-trip; random bytes give a one-line error or a parse)."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neko.correct.model_dir import read_model_info
from neko.data.formats import FORMATS, read_examples, write_examples
from neko.data.jsonl import read_jsonl
from neko.data.schema import Example
from neko.errors import NekoError
from neko.evaluate.cli import load_routing_stats, read_prediction_lines
from neko.io import (
    atomic_folder,
    atomic_write,
    check_writable,
    check_writable_folder,
    json_line,
    parse_json,
    read_json,
    read_json_lines,
    read_json_object,
    read_lines,
    read_text,
    split_lines,
    write_json_lines,
    write_text,
)
from neko.tasks import known_tasks

# Sized so that every property test together takes well under a minute on a busy two-core machine.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ROUND_TRIP = settings(FUZZ, max_examples=25)
AS_ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- atomic writes ---------------------------------------------------------------------------------


def test_new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x\n")
        write_json_lines(tmp_path / "b.jsonl.gz", [{"a": 1}])
    finally:
        os.umask(umask)
    assert mode(tmp_path / "a.txt") == 0o644
    assert mode(tmp_path / "b.jsonl.gz") == 0o644


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old\n")
    path.chmod(0o640)
    write_text(path, "new\n")
    assert path.read_text() == "new\n" and mode(path) == 0o640


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    write_text(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.jsonl"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_full_disk_is_a_one_line_error_that_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("old\n")

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NekoError, match=r"a\.txt: cannot write \(No space left on device\)"):
        write_text(path, "new\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(PermissionError), atomic_write(path):  # the block's own errors pass through
        raise PermissionError(errno.EACCES, "elsewhere")


def test_a_lone_surrogate_cannot_be_written(tmp_path):
    with pytest.raises(NekoError, match=r"lone surrogate \\ud800"):
        write_text(tmp_path / "a.txt", "x\ud800")
    assert list(tmp_path.iterdir()) == []


def test_compressed_output_is_reproducible(tmp_path):
    write_text(tmp_path / "a.txt.gz", "same\n")
    first = (tmp_path / "a.txt.gz").read_bytes()
    write_text(tmp_path / "a.txt.gz", "same\n")
    assert (tmp_path / "a.txt.gz").read_bytes() == first
    assert gzip.decompress(first) == b"same\n"


def test_unwritable_paths_are_refused_up_front(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NekoError, match="is a folder, expected a file"):
        check_writable(tmp_path / "folder")
    with pytest.raises(NekoError, match="file is a file, not a folder"):
        check_writable(tmp_path / "file" / "out.jsonl")
    with pytest.raises(NekoError, match="file is a file, not a folder"):
        check_writable(tmp_path / "file" / "deeper" / "out.jsonl")
    with pytest.raises(NekoError, match="is a file, expected a folder"):
        check_writable_folder(tmp_path / "file")
    assert check_writable(tmp_path / "new" / "deeper" / "out.jsonl")  # missing folders are made later
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(AS_ROOT, reason="root may write anywhere")
def test_read_only_places_are_refused_up_front(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "ro.txt").write_text("x")
    (tmp_path / "ro.txt").chmod(0o444)
    locked.chmod(0o555)
    try:
        with pytest.raises(NekoError, match="permission denied"):
            check_writable(locked / "out.jsonl")
        with pytest.raises(NekoError, match="read-only"):
            check_writable(tmp_path / "ro.txt")
    finally:
        locked.chmod(0o755)


# --- reading ---------------------------------------------------------------------------------------


def test_lines_split_on_newline_only():
    assert split_lines("a\fb\u2028c\x85d\r\ne\rf\n\ng") == ["a\fb\u2028c\x85d", "e\rf", "", "g"]
    assert split_lines("") == [] and split_lines("\n") == [""]


def test_reading_drops_a_byte_order_mark(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfone\ntwo\n")
    assert read_lines(tmp_path / "a.txt") == ["one", "two"]
    (tmp_path / "a.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_json(tmp_path / "a.json") == {"a": 1}
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert [value for _, _, value in read_json_lines(tmp_path / "a.jsonl")] == [{"a": 1}]


def test_json_lines_escape_every_line_separator(tmp_path):
    record = {"text": "a\u2028b\u2029c\x85d\x1ce\x0bf\x0cg\rh\ni"}
    line = json_line(record)
    assert line.endswith("\n") and len(line.splitlines()) == 1
    write_json_lines(tmp_path / "a.jsonl", [record, record])
    assert [value for _, _, value in read_json_lines(tmp_path / "a.jsonl")] == [record, record]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 5000, "nested more than 100 levels deep"),
        ("[" * 150 + "]" * 150, "nested more than 100 levels deep"),
        ("1" * 5000, "a number too long to read"),
        ('"a\\ud800"', r"lone surrogate \\ud800"),
        ('{"a": ["\\udfff"]}', r"lone surrogate \\udfff"),
        ('{"a": 1,}', "not valid JSON"),
    ],
)
def test_hostile_json_is_a_one_line_error(text, message):
    with pytest.raises(NekoError, match=message) as caught:
        parse_json(text, "x.json")
    assert str(caught.value).startswith("x.json") and "\n" not in str(caught.value)


def test_a_surrogate_pair_is_a_character():
    assert parse_json('"\\ud83d\\ude00"', "x") == "\U0001f600"


def test_reading_errors_name_file_and_line(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"a": 1}\n{"a": \xff}\n')
    with pytest.raises(NekoError, match=r"a.jsonl:2: not UTF-8"):
        list(read_json_lines(tmp_path / "a.jsonl"))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-12])
    with pytest.raises(NekoError, match=r"b.jsonl.gz:\d+: cannot read \(the compressed file is truncated\)"):
        list(read_json_lines(tmp_path / "b.jsonl.gz"))
    (tmp_path / "c.json").write_text('{\n"a": 1,\n}')
    with pytest.raises(NekoError, match=r"c.json:3: not valid JSON"):
        read_json(tmp_path / "c.json")
    with pytest.raises(NekoError, match="no such file"):
        read_json(tmp_path / "missing.json")
    with pytest.raises(NekoError, match="is a folder"):
        read_json(tmp_path)
    (tmp_path / "d.jsonl.gz").write_bytes(b"")  # no gzip header: cut short, not empty content
    for read in (lambda p: list(read_json_lines(p)), read_text):
        with pytest.raises(
            NekoError, match=r"d\.jsonl\.gz: cannot read \(not a valid gzip file: the file is empty\)"
        ):
            read(tmp_path / "d.jsonl.gz")
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress(b""))  # a gzip of nothing is empty content
    assert list(read_json_lines(tmp_path / "e.jsonl.gz")) == []


@pytest.mark.parametrize("tail", [b'{"a": 3, "b', '{"a": "\u00e9'.encode()[:-1]])
def test_a_torn_last_line_is_left_out_only_when_asked(tmp_path, tail):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n' + tail)
    assert [value for _, _, value in read_json_lines(path, torn_tail=True)] == [{"a": 1}, {"a": 2}]
    with pytest.raises(NekoError, match=r"log.jsonl:3: not"):
        list(read_json_lines(path))
    path.write_bytes(b'{"a": 1}\n' + tail + b"\n")
    with pytest.raises(NekoError, match=r"log.jsonl:2: not"):
        list(read_json_lines(path, torn_tail=True))


# --- property-based: round trips -------------------------------------------------------------------

# Any Unicode text (no surrogates: no UTF-8 file can hold one), line separators and BOMs included.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["a\u2028b", "x\x85y", "\ufeffbom", "form\ffeed", "cr\rlf", "two\nlines", " ", "", "[", "{"]
)
JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=20,
)


@st.composite
def examples(draw, max_size: int = 5) -> list[Example]:
    """Examples with unique ids and every field; metadata keys cannot clash with any format's fields."""
    ids = draw(st.lists(TEXT, min_size=0, max_size=max_size, unique=True))
    return [
        Example(
            id=identifier,
            task=draw(st.sampled_from(known_tasks())),
            hypotheses=draw(st.lists(TEXT, min_size=1, max_size=3)),
            reference=draw(st.none() | TEXT),
            extra_references=draw(st.lists(TEXT, max_size=2)),
            dataset=draw(TEXT),
            language_pair=draw(st.none() | st.just("en-es")),
            metadata=draw(st.dictionaries(TEXT.map(lambda key: "m_" + key), JSON_VALUE, max_size=3)),
        )
        for identifier in ids
    ]


@ROUND_TRIP
@given(items=examples())
@pytest.mark.parametrize(
    ("name", "format"),
    [
        ("x.jsonl", None),
        ("x.jsonl.gz", None),
        ("x.json", "hyporadise"),
        ("x.jsonl", "hyporadise"),
        ("x.json", "gensec"),
        ("x.jsonl.gz", "gensec"),
    ],
)
def test_every_field_survives_a_round_trip(tmp_path, items, name, format):
    path = tmp_path / name
    write_examples(path, items, format=format)
    assert read_examples(path, format=format) == items


@FUZZ
@given(items=examples(max_size=8))
def test_text_round_trip_keeps_each_best_hypothesis_on_its_line(tmp_path, items):
    path = tmp_path / "x.txt"
    try:
        write_examples(path, items)
    except NekoError as error:
        assert "cannot be written as one line" in str(error)
        return
    read = read_examples(path, task="asr")
    assert [e.best_hypothesis for e in read] == [e.best_hypothesis for e in items]
    assert [e.id for e in read] == [f"x-{n}" for n in range(1, len(items) + 1)]


@FUZZ
@given(records=st.lists(JSON_VALUE, max_size=5))
def test_json_lines_round_trip_any_value(tmp_path, records):
    path = tmp_path / "x.jsonl"
    write_json_lines(path, records)
    assert [value for _, _, value in read_json_lines(path)] == records


# --- property-based: hostile bytes -----------------------------------------------------------------


def _one_line_error_or_parse(read) -> None:
    try:
        read()
    except NekoError as error:
        assert str(error) and "\n" not in str(error), repr(str(error))


# Bytes that reach past the first checks: JSON-ish documents, mutated, as well as raw noise.
JSON_DOCUMENT = st.builds(lambda value: json.dumps(value).encode(), JSON_VALUE)
RECORDS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            key: JSON_VALUE | TEXT | st.lists(TEXT, max_size=2)
            for key in ("id", "task", "hypotheses", "input", "output", "hypothesis", "source", "metadata")
        },
    ),
    max_size=3,
)
LINES_OF_RECORDS = RECORDS.map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode())
LIST_OF_RECORDS = RECORDS.map(lambda rs: json.dumps(rs).encode())
HOSTILE = (
    st.binary(max_size=200)
    | JSON_DOCUMENT
    | LINES_OF_RECORDS
    | LIST_OF_RECORDS
    | st.builds(lambda data, cut: data[:cut], LIST_OF_RECORDS | LINES_OF_RECORDS, st.integers(0, 200))
    | st.builds(lambda data: b"\xef\xbb\xbf" + data, LIST_OF_RECORDS | LINES_OF_RECORDS)
)


@FUZZ
@given(data=HOSTILE)
@pytest.mark.parametrize("name", ["x.jsonl", "x.json", "x.txt", "x", "x.jsonl.gz"])
@pytest.mark.parametrize("format", [None, *FORMATS])
def test_random_bytes_give_an_error_line_or_examples(tmp_path, data, name, format):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") and data[:1] != b"\x00" else data)
    _one_line_error_or_parse(lambda: read_examples(path, format=format, task=None))
    _one_line_error_or_parse(lambda: read_examples(path, format=format, task="asr"))


@FUZZ
@given(data=HOSTILE)
def test_random_standard_input_gives_an_error_line_or_examples(monkeypatch, data):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    _one_line_error_or_parse(lambda: read_examples("-", task="asr"))


@FUZZ
@given(data=HOSTILE)
def test_random_bytes_to_the_other_readers(tmp_path, data):
    for name in ("x.jsonl", "x.jsonl.gz"):
        (tmp_path / name).write_bytes(data)
        _one_line_error_or_parse(lambda n=name: list(read_jsonl(tmp_path / n)))
        _one_line_error_or_parse(lambda n=name: read_prediction_lines(tmp_path / n))
    (tmp_path / "stats.json").write_bytes(data)
    _one_line_error_or_parse(lambda: load_routing_stats(tmp_path / "stats.json"))
    (tmp_path / "neko.json").write_bytes(data)
    _one_line_error_or_parse(lambda: read_model_info(tmp_path))


NEKO_JSON_KEYS = ("format", "tasks", "assignment", "strategy", "prompt_style", "max_source_tokens")
NEKO_JSON_KEYS += ("max_new_tokens", "max_hypotheses", "max_edit_rate", "gate", "custom_tasks")


@FUZZ
@given(
    info=st.fixed_dictionaries(
        {"format": st.just(1), "tasks": st.just(["asr"]) | JSON_VALUE},
        optional={key: JSON_VALUE for key in NEKO_JSON_KEYS[2:]},
    )
)
def test_random_neko_json_gives_an_error_line_or_a_model_info(tmp_path, info):
    (tmp_path / "neko.json").write_text(json.dumps(info))
    _one_line_error_or_parse(lambda: read_model_info(tmp_path))


def test_a_key_holding_a_newline_is_quoted_so_the_error_stays_one_line(tmp_path):
    # found by the fuzz test above: {"gate": {"\n": null}} printed "gate.\n: must be a mapping"
    (tmp_path / "neko.json").write_text(json.dumps({"format": 1, "tasks": ["asr"], "gate": {"\n": None}}))
    with pytest.raises(NekoError) as error:
        read_model_info(tmp_path)
    assert "\n" not in str(error.value) and "gate['\\n']: must be a mapping" in str(error.value)


def test_read_json_object_refuses_another_value(tmp_path):
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(NekoError, match=r"list.json: expected a JSON object, got list$"):
        read_json_object(tmp_path / "list.json")
    (tmp_path / "object.json").write_text('{"a": 1}')
    assert read_json_object(tmp_path / "object.json") == {"a": 1}


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_folder(out) as folder:
        (folder / "half").write_text("x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()  # an empty folder is replaced
    with atomic_folder(out) as folder:
        (folder / "whole").write_text("x")
        assert not (out / "whole").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (out / "whole").read_text() == "x"


def test_atomic_folder_replaces_a_full_folder_only_when_told_and_only_once_the_new_one_is_whole(tmp_path):
    out = tmp_path / "parked"
    out.mkdir()
    (out / "old").write_text("x")
    with pytest.raises(RuntimeError), atomic_folder(out, replace=True) as folder:
        (folder / "half").write_text("x")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["parked"] and (out / "old").exists()
    with pytest.raises(OSError), atomic_folder(out) as folder:
        (folder / "new").write_text("y")
    assert (out / "old").exists()
    with atomic_folder(out, replace=True) as folder:
        (folder / "new").write_text("y")
    assert [p.name for p in tmp_path.iterdir()] == ["parked"]
    assert [p.name for p in out.iterdir()] == ["new"]
