"""Handbook alignment (`neko.data.parallel`) and the MT builder, on small hand-made HTML pages."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from neko.data import parallel
from neko.data.builders import mt
from neko.data.parallel import AlignmentCounts, SentencePair, align_folder, align_page
from neko.errors import NekoError


def _page(*paragraphs: str) -> str:
    body = "".join(f'<div class="para">{p}</div>\n' for p in paragraphs)
    return f"<html><body><h1>Title</h1>{body}</body></html>"


ENGLISH = _page(
    "The system is small. It runs on <code class='filename'>old</code> computers.",
    "Debian is a free operating system. It is old.",
    'Use <code class="command">apt install vim</code> to install it. Then restart the editor now.',
    "A list follows: <div class='itemizedlist'>one</div>",
    "Installing packages",
    "This paragraph stays in English in the Spanish edition.",
    "One sentence in English only here.",
    "The package manager keeps a list of packages.",
    "The package manager keeps a list of packages.",
)
SPANISH = _page(
    "El sistema es pequeño. Funciona en ordenadores <code class='filename'>old</code>.",
    "Debian es un sistema operativo libre. Es antiguo.",
    'Use <code class="command">apt install vim</code> para instalarlo. Después reinicie el editor ya.',
    "Sigue una lista: <div class='itemizedlist'>uno</div>",
    "Instalación de paquetes",
    "This paragraph stays in English in the Spanish edition.",
    "Una frase. Dos frases en español aquí.",
    "El gestor de paquetes guarda una lista de paquetes.",
    "El gestor de paquetes mantiene una lista de paquetes.",
)


def test_align_page_counts_every_filter():
    counts = AlignmentCounts()
    pairs = parallel.deduplicate(align_page("apt", ENGLISH, SPANISH, counts), counts)
    assert [(p.english, p.spanish) for p in pairs] == [
        ("The system is small.", "El sistema es pequeño."),
        ("It runs on old computers.", "Funciona en ordenadores old."),
        ("Debian is a free operating system.", "Debian es un sistema operativo libre."),
        ("Then restart the editor now.", "Después reinicie el editor ya."),
        (
            "The package manager keeps a list of packages.",
            "El gestor de paquetes guarda una lista de paquetes.",
        ),
    ]
    assert [p.id for p in pairs][:2] == ["handbook/apt/0/0", "handbook/apt/0/1"]
    assert {**asdict(counts), "pages_with_pairs": len(counts.pages_with_pairs)} == {
        "pages": 1,
        "paragraphs": 9,
        "paragraphs_without_blocks": 8,  # the list
        "paragraphs_translated": 7,  # the English paragraph left untranslated
        "paragraphs_prose": 6,  # the title
        "paragraphs_equal_sentences": 5,  # one English sentence, two Spanish
        "sentence_pairs": 8,
        "pairs_without_code": 7,  # the command line
        "pairs_translated": 7,
        "pairs_sentence_like": 6,  # "It is old." has 3 words
        "pairs_length_ratio": 6,
        "pairs_distinct": 5,  # the repeated English sentence
        "pages_with_pairs": 1,
    }


def test_length_ratio_and_untranslated_sentences_are_dropped():
    english = _page("The cat sat on the mat today. The dog sleeps in the garden.")
    spanish = _page("Sí. The dog sleeps in the garden.")
    counts = AlignmentCounts()
    assert align_page("p", english, spanish, counts) == []
    assert (counts.sentence_pairs, counts.pairs_translated, counts.pairs_length_ratio) == (2, 1, 0)


def test_pages_with_different_paragraph_counts_are_an_error():
    with pytest.raises(NekoError, match="page p: 2 English paragraphs but 1 Spanish"):
        align_page("p", _page("One.", "Two."), _page("Uno."), AlignmentCounts())


def test_align_folder_reads_both_languages_and_names_a_missing_page(tmp_path: Path):
    with pytest.raises(NekoError, match="debian-handbook"):
        align_folder(tmp_path)
    for language, html in (("en-US", ENGLISH), ("es-ES", SPANISH)):
        (tmp_path / language).mkdir()
        (tmp_path / language / "apt.html").write_text(html, encoding="utf-8")
    pairs, counts = align_folder(tmp_path)
    assert len(pairs) == 5 and counts.pages == 1
    (tmp_path / "en-US" / "security.html").write_text(ENGLISH, encoding="utf-8")
    with pytest.raises(NekoError, match="lacks page security"):
        align_folder(tmp_path)


def test_held_out_pages_are_test_and_zero_shot():
    pair = SentencePair(
        "sect.selinux", 3, 0, "The policy is loaded at boot time.", "La política se carga al arrancar."
    )
    assert pair.zero_shot and pair.split == "test"
    seen = SentencePair("apt", 3, 0, pair.english, pair.spanish)
    assert not seen.zero_shot and seen.split == parallel.split_of(pair.english)


def test_mt_examples_batch_the_translator_and_keep_the_source(monkeypatch):
    pairs = [
        SentencePair(
            "apt" if i % 2 else "security", i, 0, f"Sentence number {i} is here.", f"Frase {i} aquí."
        )
        for i in range(5)
    ]
    monkeypatch.setattr(mt, "BATCH", 2)
    calls = []

    def translator(lines: list[str]) -> list[str]:
        calls.append(len(lines))
        return [line.upper() for line in lines]

    examples = mt.build(pairs, "test", 0, translator)
    assert calls == [2, 2, 1]
    first = examples[0]
    assert (first.id, first.task, first.language_pair) == ("mt-test-s0-000000", "mt", "en-es")
    assert first.hypotheses == ["SENTENCE NUMBER 0 IS HERE."] and first.reference == "Frase 0 aquí."
    assert first.metadata["source_text"] == "Sentence number 0 is here."
    assert [e.dataset for e in examples[:2]] == ["handbook-held-out", "handbook"]
    assert [e.metadata["zero_shot"] for e in examples[:2]] == [True, False]


def test_mt_plan_is_seeded_and_a_prefix_of_the_full_order(monkeypatch):
    pairs = tuple(
        SentencePair("apt", i, 0, f"Sentence number {i} is here.", f"Frase {i}.") for i in range(200)
    )
    monkeypatch.setattr(parallel, "handbook_pairs", lambda: pairs)
    full = mt.plan("train", 0)
    assert full[:10] == mt.plan("train", 0, 10) and full != mt.plan("train", 1)
    assert sorted(full, key=lambda p: p.paragraph) == [p for p in pairs if p.split == "train"]


def test_st_plan_speaks_the_handbook_pairs_without_repeating_one(monkeypatch):
    from neko.data.builders import speech

    pairs = tuple(
        SentencePair("security" if i < 3 else "apt", i, 0, f"Sentence number {i} is here.", f"Frase {i}.")
        for i in range(300)
    )
    monkeypatch.setattr(parallel, "handbook_pairs", lambda: pairs)
    test_pairs = [p for p in pairs if p.split == "test"]
    jobs = speech.plan("st", "test", 10_000, 0)
    assert len(jobs) == len(test_pairs) and jobs[0].id == "st-handbook-test-s0-000000"
    assert sorted(j.params["text"] for j in jobs) == sorted(p.english for p in test_pairs)
    held_out = {j.params["text_id"] for j in jobs if j.params["source"] == speech.HELD_OUT_SOURCE}
    assert held_out == {p.id for p in pairs[:3]}
    assert all(j.params["translation"] == f"Frase {j.params['text_id'].split('/')[2]}." for j in jobs)
