"""The text sources parse tiny fixture files the way the installed
packages are laid out (no package is needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import neko.data.sources as sources
from neko.data.sources import Sentence, gcide_quotations, man_description, sphinx_paragraphs
from neko.errors import NekoError
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
    paragraphs = sphinx_paragraphs((FIXTURES / "page.html").read_text())
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
    monkeypatch.setattr(sources, "load_source", lambda name, max_words: tuple(web))
    texts = {s.id: s.text for s in sources.load_kjv()}
    assert f"kjv/{kept.id.removeprefix('bible/')}" in texts
    assert f"kjv/{held_out.id.removeprefix('bible/')}" not in texts
    assert "And the held out verse said so." not in texts.values()


def test_commentary_paragraphs_are_split_and_kept_where_they_first_appear():
    entries = {
        "Genesis 1:1": '<milestone type="line"/>',
        "Genesis 1:2": " Verses 3-5    God said, Let there be light.    Verses 6-13    The earth was full.",
        "Genesis 1:3": " Verses 3-5    God said, Let there be light.",
    }
    assert sources.commentary_paragraphs(entries) == [
        ("Genesis 1:2", 0, "Verses 3-5"),
        ("Genesis 1:2", 1, "God said, Let there be light."),
        ("Genesis 1:2", 2, "Verses 6-13"),
        ("Genesis 1:2", 3, "The earth was full."),
    ]


def test_commentaries_leave_out_quotations_of_held_out_verses(tmp_path, monkeypatch):
    web = [Sentence(f"bible/Book 1:{i}", f"The verse number {i} of the book.", "bible") for i in range(40)]
    held_out = next(s for s in web if s.split != "train").id.removeprefix("bible/")
    kept = next(s for s in web if s.split == "train").id.removeprefix("bible/")
    kjv = {
        held_out: "They compassed me about also with words of hatred; and fought against me.",
        kept: "The Lord is my shepherd; I shall not want.",
    }
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_json(sources.cache_dir() / "bible-kjv.json", kjv)
    paragraphs = [
        ["Psalms 109:1", 0, "They compassed me about also with words of hatred. So David complains of them."],
        ["Psalms 23:1", 4, "The Lord is my shepherd; I shall not want. Verse 2."],
    ]
    write_json(sources.cache_dir() / "commentary-tdavid.json", paragraphs)
    monkeypatch.setattr(sources, "load_source", lambda name, max_words: tuple(web))
    assert {s.id: s.text for s in sources.load_tdavid()} == {
        "tdavid/Psalms 109:1/0/1": "So David complains of them.",
        "tdavid/Psalms 23:1/4/0": "The Lord is my shepherd; I shall not want.",
    }


def test_load_linuxdoc_reads_the_newest_documentation_without_translations(tmp_path, monkeypatch):
    page = "<p>The kernel schedules tasks on every CPU. Use <code>nice</code> to change it.</p>"
    for version, text in (("5.10", "<p>An old version of the page says so.</p>"), ("6.1", page)):
        (tmp_path / f"linux-doc-{version}" / "html" / "translations").mkdir(parents=True)
        (tmp_path / f"linux-doc-{version}" / "html" / "sched.html").write_text(text)
        (tmp_path / f"linux-doc-{version}" / "html" / "translations" / "it.html").write_text(text)
    monkeypatch.setattr(sources, "LINUXDOC_GLOB", str(tmp_path / "linux-doc-*" / "html"))
    assert {s.id: s.text for s in sources.load_linuxdoc()} == {
        "linuxdoc/sched/0/0": "The kernel schedules tasks on every CPU."
    }


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PERLDOC_GLOB", str(tmp_path / "5.*" / "pod"))
    with pytest.raises(NekoError, match="'perl-doc'"):
        sources.load_perldoc()
    monkeypatch.setattr(sources, "JARGON_DICT", tmp_path / "jargon.dict.dz")
    with pytest.raises(NekoError, match="'dict-jargon'"):
        sources.load_jargon()


POD = """=head1 NAME

perlfixture - a fixture

=head1 DESCRIPTION

The B<print> function writes a list of strings to the I<current> handle.
Use C<$|> to flush it, see L<perlvar>.

    print "verbatim code\\n";

(W syntax) You assigned a bareword as a signal handler name.
It is described in L<the manual|perlipc/Signals>.

=begin html

<p>Raw HTML is not text.</p>

=end html
"""


def test_pod_paragraphs_drop_code_commands_and_verbatim_blocks():
    assert sources.pod_paragraphs(POD) == [
        "perlfixture - a fixture",
        "The print function writes a list of strings to the current handle. Use ` to flush it, see `.",
        "You assigned a bareword as a signal handler name. It is described in the manual.",
    ]


def test_load_perldoc_leaves_out_sentences_with_code(tmp_path, monkeypatch):
    (tmp_path / "5.36.0" / "pod").mkdir(parents=True)
    (tmp_path / "5.36.0" / "pod" / "perlfixture.pod").write_text(POD)
    monkeypatch.setattr(sources, "PERLDOC_GLOB", str(tmp_path / "5.*" / "pod"))
    assert [s.id for s in sources.load_perldoc()] == [
        "perldoc/perlfixture/1/0",
        "perldoc/perlfixture/2/0",
        "perldoc/perlfixture/2/1",
    ]


FOLDOC = """actor

   1. <programming> In {object-oriented} programming, an {object
   } which exists as a {concurrent} process.

   ["Actors", C. Hewitt et al, IFIP 77].

   See also {Carl Hewitt}, {concurrency}.

   (1994-11-08)

"""
JARGON = """blurgle
 /bler'gl/, n.

    [UK] Spoken metasyntactic variable, to indicate some text that is obvious
    from context. Compare {mumble}, sense 7.

            Windows NT crashed.
            I am the Blue Screen of Death.
"""


def test_dictd_paragraphs_keep_the_definitions_without_labels_and_braces():
    assert list(sources.dictd_paragraphs(FOLDOC, 3)) == [
        (3, "In object-oriented programming, an object which exists as a concurrent process."),
        (6, "."),  # a citation is one bracketed label
        (8, "See also Carl Hewitt, concurrency."),
        (10, "(1994-11-08)"),
    ]


def test_load_foldoc_and_jargon_keep_prose_definitions(tmp_path, monkeypatch):
    for name, text in (("foldoc", FOLDOC), ("jargon", JARGON)):
        (tmp_path / f"{name}.dict.dz").write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(sources, "FOLDOC_DICT", tmp_path / "foldoc.dict.dz")
    monkeypatch.setattr(sources, "JARGON_DICT", tmp_path / "jargon.dict.dz")
    assert {s.id: s.text for s in sources.load_foldoc()} == {
        "foldoc/3/0": "In object-oriented programming, an object which exists as a concurrent process."
    }
    assert {s.id: s.text for s in sources.load_jargon()} == {
        "jargon/4/0": "Spoken metasyntactic variable, to indicate some text that is obvious from context."
    }


def test_long_sentences_are_kept_only_up_to_the_asked_length(tmp_path, monkeypatch):
    long = " ".join(["many"] * 30)
    (tmp_path / "foldoc.dict.dz").write_bytes(gzip.compress(f"x\n\n   A {long} words.\n".encode()))
    monkeypatch.setattr(sources, "FOLDOC_DICT", tmp_path / "foldoc.dict.dz")
    assert sources.load_foldoc() == []
    assert [len(s.text.split()) for s in sources.load_foldoc(max_words=60)] == [32]
