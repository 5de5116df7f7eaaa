"""The GCIDE, Python-documentation and man-page sources parse tiny fixture files the way the installed
packages are laid out (no package is needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import neko.data.sources as sources
from neko.data.sources import Sentence, gcide_quotations, man_description, pydoc_paragraphs
from neko.io import write_json

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


def test_gcide_keeps_prose_quotations_only():
    quotations = [text for _, text in gcide_quotations((FIXTURES / "gcide.txt").read_text())]
    # verse (Milton), an archaic author (Chaucer), a Bible verse (Deut.) and text inside definitions
    # (`--Shak.`, `--Dickens.`) are not quotations; a right-aligned author may stand on its own line
    assert quotations == [
        "He was a man whom no check could abash.",
        "The King of Scots ... sore abated the walls of the castle.",
        "Nine thousand parishes, abating the odd hundreds.",
    ]


def test_gcide_quotations_carry_the_line_they_start_on():
    lines = (FIXTURES / "gcide.txt").read_text().splitlines()
    for number, text in gcide_quotations("\n".join(lines)):
        assert lines[number - 1].strip().split()[:2] == text.split()[:2]


def test_load_gcide_reads_the_compressed_dictionary(tmp_path, monkeypatch):
    dictionary = tmp_path / "gcide.dict.dz"
    dictionary.write_bytes(gzip.compress((FIXTURES / "gcide.txt").read_bytes()))
    monkeypatch.setattr(sources, "GCIDE_DICT", dictionary)
    items = sources.load_gcide()
    assert [s.text for s in items] == [
        "He was a man whom no check could abash.",
        "The King of Scots ... sore abated the walls of the castle.",
        "Nine thousand parishes, abating the odd hundreds.",
    ]
    assert {s.source for s in items} == {"gcide"} and items[0].id == "gcide/9/0"


def test_pydoc_keeps_prose_and_drops_code_tables_sidebars_and_version_labels():
    paragraphs = pydoc_paragraphs((FIXTURES / "page.html").read_text())
    assert paragraphs[0] == (
        "Classes provide a means of bundling data and functionality together. "
        "Creating a new class creates a new type of object."
    )
    assert paragraphs[1] == "Call ` on a number. Python's class mechanism adds classes with little syntax."
    assert paragraphs[2] == "The key argument may be given by name."
    assert len(paragraphs) == 3


def test_load_pydoc_leaves_out_sentences_with_inline_code(tmp_path, monkeypatch):
    (tmp_path / "index.html").write_text("<p>Index.</p>")
    (tmp_path / "tutorial").mkdir()
    (tmp_path / "tutorial" / "classes.html").write_text((FIXTURES / "page.html").read_text())
    monkeypatch.setattr(sources, "PYDOC_DIR", tmp_path)
    texts = {s.id: s.text for s in sources.load_pydoc()}
    assert texts == {
        "pydoc/tutorial/classes/0/0": "Classes provide a means of bundling data and functionality together.",
        "pydoc/tutorial/classes/0/1": "Creating a new class creates a new type of object.",
        "pydoc/tutorial/classes/1/1": "Python's class mechanism adds classes with little syntax.",
        "pydoc/tutorial/classes/2/0": "The key argument may be given by name.",
    }


def test_man_description_reads_the_description_prose_of_a_roff_page():
    assert man_description((FIXTURES / "signal.7").read_text()) == [
        "Linux supports both POSIX reliable signals and POSIX real-time signals.",
        "Each signal has a current disposition, which determines how the process behaves when it is "
        "delivered the signal.",
        "Default action is to terminate the process.",
        "A process can change the disposition of a signal using sigaction or signal. "
        "It is easy to use - mostly.",
    ]


def test_load_manpages_skips_include_stubs(tmp_path, monkeypatch):
    page, stub = tmp_path / "signal.7.gz", tmp_path / "sigset.7.gz"
    page.write_bytes(gzip.compress((FIXTURES / "signal.7").read_bytes()))
    stub.write_bytes(gzip.compress(b".so man7/signal.7\n"))
    monkeypatch.setattr(sources, "_manpage_files", lambda: [page, stub])
    items = sources.load_manpages()
    assert {s.id.split("/")[1] for s in items} == {"signal.7"}
    assert items[0].text == "Linux supports both POSIX reliable signals and POSIX real-time signals."


def test_kjv_leaves_out_the_verses_whose_web_translation_is_held_out(tmp_path, monkeypatch):
    web = [Sentence(f"bible/Book 1:{i}", f"The verse number {i} of the book.", "bible") for i in range(40)]
    held_out = next(s for s in web if s.split != "train")
    kept = next(s for s in web if s.split == "train")
    kjv = {key: f"And it came to pass in verse {key}." for key in ("Book 1:0", "Book 1:1", "Book 1:2")}
    kjv[held_out.id.removeprefix("bible/")] = "And the held out verse said so."
    kjv[kept.id.removeprefix("bible/")] = "And the kept verse said so."
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_json(sources.cache_dir() / "bible-kjv.json", kjv)
    monkeypatch.setattr(sources, "load_source", lambda name: tuple(web))
    texts = {s.id: s.text for s in sources.load_kjv()}
    assert f"kjv/{kept.id.removeprefix('bible/')}" in texts
    assert f"kjv/{held_out.id.removeprefix('bible/')}" not in texts
    assert "And the held out verse said so." not in texts.values()
