"""Corpus builders: valid examples from real recognizers, resumable builds, splits, TEC corruption."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from neko.data.builders import common
from neko.data.builders.common import Job, partial_path, run_build
from neko.data.jsonl import read_jsonl
from neko.data.schema import Example
from neko.data.sources import Sentence
from neko.data.splits import SPLITS, check_disjoint, normalize, split_of
from neko.errors import NekoError

SENTENCES = [
    "A man in a blue shirt is standing on a ladder.",
    "Two dogs are playing with a ball in the park.",
    "The children of Israel went into the city.",
]


def _needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup.sh installs it)")


def _jobs(task: str, texts: list[str], **extra: object) -> list[Job]:
    return [
        Job(i, f"{task}-test-{i}", {"text": t, "text_id": f"t{i}", "source": "captions", **extra})
        for i, t in enumerate(texts)
    ]


def _round_trips(examples: list[Example], task: str) -> None:
    assert examples
    for example in examples:
        assert Example.from_dict(example.to_dict()) == example
        assert example.task == task and example.hypotheses and example.reference


# --- splits -----------------------------------------------------------------------------------------


def test_split_is_deterministic_and_insensitive_to_case_and_punctuation():
    assert normalize("A Man, in  a blue-shirt!") == normalize("a man in a blueshirt")
    texts = [f"Sentence number {i} about a dog." for i in range(3000)]
    splits = [split_of(t) for t in texts]
    assert splits == [split_of(t) for t in texts]
    assert all(split_of(t.upper().replace(".", " !")) == s for t, s in zip(texts, splits, strict=True))
    counts = {s: splits.count(s) for s in SPLITS}
    assert counts["train"] > 2400 and counts["dev"] > 80 and counts["test"] > 80


def test_check_disjoint_across_tasks():
    texts = [f"A caption {i} of a cat on a mat." for i in range(400)]
    by_split: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for i, text in enumerate(texts):
        split = split_of(text)
        by_split[split].append(
            Example(f"asr-{i}", "asr", ["x"], text.lower(), metadata={"source_text": text})
        )
        by_split[split].append(Example(f"tec-{i}", "tec", ["x"], text))
        by_split[split].append(Example(f"st-{i}", "st", ["x"], "un gato", metadata={"source_text": text}))
    assert check_disjoint(by_split) == []
    test_text = next(t for t in texts if split_of(t) == "test")
    leaked = Example("tec-leak", "tec", ["x"], test_text.upper())
    problems = check_disjoint({**by_split, "train": [*by_split["train"], leaked]})
    assert any("tec-leak" in p for p in problems)


def test_sources_are_split_and_filtered(monkeypatch):
    from neko.data import sources

    monkeypatch.setattr(
        sources,
        "load_source",
        lambda name: tuple(Sentence(f"s{i}", t, name) for i, t in enumerate(SENTENCES * 2)),
    )
    assert sources.acceptable("A dog runs across the green field.")
    assert not sources.acceptable("Too short.")
    assert not sources.acceptable("See <code>apt-get</code> for the details of it.")
    for sentence in sources.load_source("captions"):
        assert sentence.split == split_of(sentence.text)


# --- resumable runner -------------------------------------------------------------------------------


def _echo(state: object, job: Job) -> Example:
    return Example(job.id, "tec", [job.params["text"].lower()], job.params["text"])


def test_interrupted_build_resumes_without_duplicates_or_gaps(tmp_path: Path):
    jobs = [Job(i, f"tec-train-s0-{i:06d}", {"text": f"Sentence {i} is here."}) for i in range(20)]
    out = tmp_path / "train.jsonl.gz"
    partial = partial_path(out)
    # A killed build: 7 finished lines, then a torn one.
    lines = [json.dumps(_echo(None, job).to_dict()) + "\n" for job in jobs[:8]]
    partial.write_text("".join(lines[:7]) + lines[7][: len(lines[7]) // 2], encoding="utf-8")
    assert run_build(out, jobs, _echo, workers=1) == 20
    ids = [e.id for e in read_jsonl(out)]
    assert ids == [job.id for job in jobs]
    assert not partial.exists()
    # Extending a finished corpus builds only the new ids and keeps the old ones.
    more = [
        *jobs,
        *(Job(i, f"tec-train-s0-{i:06d}", {"text": f"Sentence {i} is here."}) for i in range(20, 25)),
    ]
    assert run_build(out, more, _echo, workers=2) == 25
    ids = [e.id for e in read_jsonl(out)]
    assert ids == [job.id for job in more] and len(set(ids)) == 25


def test_a_build_refuses_to_merge_examples_it_does_not_plan(tmp_path: Path):
    out = tmp_path / "train.jsonl.gz"
    seed0 = [Job(i, f"tec-train-s0-{i:06d}", {"text": f"Sentence {i} is here."}) for i in range(3)]
    assert run_build(out, seed0, _echo, workers=1) == 3
    seed1 = [Job(i, f"tec-train-s1-{i:06d}", {"text": f"Sentence {i} is here."}) for i in range(3)]
    foreign = r"holds 3 examples this build does not plan \(e\.g\. 'tec-train-s0-0+'"
    with pytest.raises(NekoError, match=foreign):
        run_build(out, seed1, _echo, workers=1)
    with pytest.raises(NekoError, match="does not plan"):  # a smaller count
        run_build(out, seed0[:2], _echo, workers=1)
    assert [e.id for e in read_jsonl(out)] == [job.id for job in seed0]  # untouched
    partial_path(out).write_text(json.dumps(_echo(None, seed1[0]).to_dict()) + "\n", encoding="utf-8")
    with pytest.raises(NekoError, match=r"train\.partial\.jsonl to rebuild"):  # a foreign partial file
        run_build(out, seed0, _echo, workers=1)


def test_failed_jobs_are_left_for_the_next_run(tmp_path: Path):
    def flaky(state: object, job: Job) -> Example:
        if job.index == 3:
            raise RuntimeError("tool crashed")
        return _echo(state, job)

    jobs = [Job(i, f"id-{i}", {"text": f"Sentence {i}."}) for i in range(5)]
    out = tmp_path / "x.jsonl.gz"
    with pytest.raises(NekoError, match="rerun"):
        run_build(out, jobs, flaky, workers=1)
    assert len(common.read_partial(partial_path(out))) == 4
    assert run_build(out, jobs, _echo, workers=1) == 5


def test_missing_tool_names_the_debian_package(monkeypatch):
    from neko.errors import NekoError

    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    with pytest.raises(NekoError, match="install the Debian package tesseract-ocr"):
        common.require_tools("tesseract")


# --- TEC --------------------------------------------------------------------------------------------


def test_tec_corruption_is_deterministic_and_covers_every_error_type():
    from neko.data.builders import tec

    texts = [
        "The dog is running in the park with a ball.",
        "She has walked to the market and bought some apples, then went home.",
        "Two men were sitting on a bench, talking about their work.",
        "It's a small house with a red door near the river.",
        "He writes letters to his friends in the evening.",
    ]
    seen: set[str] = set()
    kept = 0
    for i in range(600):
        text = texts[i % len(texts)]
        first = tec.corrupt(text, random.Random(f"7/{i}"))
        assert first == tec.corrupt(text, random.Random(f"7/{i}"))
        corrupted, errors = first
        seen.update(errors)
        if errors:
            assert corrupted != text
        else:
            kept += 1
            assert corrupted == text
    assert seen == set(tec.ERROR_WEIGHTS)
    assert 0.05 < kept / 600 < 0.3


LEARNER_TEXTS = [
    "The dog is running in the park with a ball, and the boy says it is fun.",
    "She has walked to the market and bought some apples, then went home to make dinner.",
    "Two men were sitting on a bench, talking about their job and the big house they see.",
    "It's a small house with a red door near the river where people learn to speak.",
    "He writes letters to his friends in the evening and also brings them many books.",
]


def test_learner_noise_is_deterministic_covers_its_types_and_grows_with_the_sentence():
    from neko.data.builders import tec

    seen: set[str] = set()
    counts: dict[int, list[int]] = {}
    for i in range(900):
        text = LEARNER_TEXTS[i % len(LEARNER_TEXTS)]
        if i % 2:
            text = " ".join(text.split()[:6]) + "."
        first = tec.corrupt(text, random.Random(f"7/{i}"), tec.LEARNER)
        assert first == tec.corrupt(text, random.Random(f"7/{i}"), tec.LEARNER)
        seen.update(first[1])
        counts.setdefault(len(text.split()), []).append(len(first[1]))
    assert seen == set(tec.LEARNER_WEIGHTS)
    short, long = (sum(c) / len(c) for length, c in sorted(counts.items()) if length in (6, max(counts)))
    assert long > 2 * short  # errors in proportion to the length, not a fixed mean


def test_word_choice_swaps_a_confusable_word_keeping_its_form_and_case():
    from neko.data.builders import tec

    words = ["Make", "sure", "they", "said", "it"]
    assert tec._word_choice(words, random.Random(0))
    assert words in (["Do", "sure", "they", "said", "it"], ["Make", "sure", "they", "told", "it"])
    assert not tec._word_choice(["nothing", "here"], random.Random(0))


def test_learner_files_are_their_own_datasets(tmp_path: Path):
    from typer.testing import CliRunner

    from neko.cli import _register_commands, app

    _register_commands()
    out = tmp_path / "learner.jsonl.gz"
    args = ["data", "build", "tec", "--noise", "learner", "--split", "dev", "--count", "6", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    examples = list(read_jsonl(out))
    assert len(examples) == 6
    assert all(e.id.startswith("tec-learner-dev-") and e.dataset.endswith("/learner") for e in examples)
    result = CliRunner().invoke(app, [*args[:4], "loud", *args[5:]])
    assert isinstance(result.exception, NekoError) and "unknown noise 'loud'" in str(result.exception)


def test_tec_and_jfleg_examples(tmp_path: Path):
    from neko.data.builders import tec

    examples = [
        tec.work(
            None,
            Job(
                i,
                f"tec-test-{i}",
                {"text": t, "text_id": f"t{i}", "source": "captions", "seed": 0, "split": "test"},
            ),
        )
        for i, t in enumerate(SENTENCES)
    ]
    _round_trips(examples, "tec")
    corpora = tmp_path / "corpora"
    folder = corpora / "jfleg" / "dev"
    folder.mkdir(parents=True)
    (folder / "dev.src").write_text("He go to school .\nI has a cat .\n")
    for k in range(4):
        (folder / f"dev.ref{k}").write_text(f"He goes to school {k}.\nI have a cat .\n")
    jfleg = tec.jfleg_examples(corpora)
    _round_trips(jfleg, "tec")
    assert jfleg[0].dataset == "jfleg" and len(jfleg[0].references) == 4


# --- real recognizers -------------------------------------------------------------------------------


@pytest.mark.tools
def test_asr_builder_makes_valid_examples():
    _needs("flite", "sox")
    pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed (pip install pocketsphinx)")
    from neko.data.builders import speech

    state = speech.setup()
    jobs = _jobs(
        "asr",
        SENTENCES[:2],
        translation=None,
        voice="flite-slt",
        condition="noise",
        effect="pink 25",
        noise_seed=1,
    )
    jobs[1].params.update(condition="rate", effect="tempo 1.1")
    examples = [speech.work_asr(state, job) for job in jobs]
    _round_trips(examples, "asr")
    assert examples[0].reference == "a man in a blue shirt is standing on a ladder"
    assert examples[0].dataset == "captions/flite-slt/noise"
    assert len(examples[0].hypotheses) == len(set(examples[0].hypotheses)) >= 2
    assert "hyp_score" in examples[0].metadata


@pytest.mark.tools
def test_st_builder_makes_valid_examples():
    _needs("flite", "sox", "apertium")
    pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed (pip install pocketsphinx)")
    from neko.data.builders import speech

    state = speech.setup()
    jobs = _jobs(
        "st",
        SENTENCES[2:],
        translation="Y los hijos de Israel entraron en la ciudad.",
        voice="flite-awb",
        condition="clean",
        effect="",
        noise_seed=1,
    )
    examples = [speech.work_st(state, job) for job in jobs]
    _round_trips(examples, "st")
    assert examples[0].language_pair == "en-es"
    assert examples[0].metadata["mt_of_clean_source"]
    assert examples[0].metadata["english_hypotheses"]


@pytest.mark.tools
def test_ocr_builder_makes_valid_examples():
    _needs("tesseract")
    from neko.data.builders import ocr

    families = ocr.font_families()
    if not families:
        pytest.skip("no fonts under /usr/share/fonts (scripts/setup.sh installs fonts-*)")
    family = sorted(families)[0]
    state = ocr.setup()
    jobs = _jobs(
        "ocr",
        SENTENCES[:2],
        family=family,
        font=families[family][0],
        size=24,
        render_seed=3,
        degradation="clean",
    )
    jobs[1].params["degradation"] = "jpeg"
    examples = [ocr.work(state, job) for job in jobs]
    _round_trips(examples, "ocr")
    assert examples[0].metadata["confidences"] == sorted(examples[0].metadata["confidences"], reverse=True)


def test_the_zero_shot_ocr_dev_file_uses_a_font_and_text_no_other_file_uses(monkeypatch):
    from neko.data.builders import ocr

    fonts = {
        name: [f"/fonts/{name}/{name}.ttf"] for name in ("dejavu", "ebgaramond", "linux-libertine", "noto")
    }
    monkeypatch.setattr(ocr, "font_families", lambda: fonts)

    def fake_sentences(task, split, seed, schedule, count):
        return [
            Sentence(f"{schedule[i % len(schedule)]}/{i}", f"line {i}", schedule[i % len(schedule)])
            for i in range(count)
        ]

    monkeypatch.setattr(ocr, "assign_sentences", fake_sentences)
    plain = {split: ocr.plan(split, 40, seed=0) for split in ("train", "dev", "test")}
    zero_shot = ocr.plan("dev", 40, seed=0, zero_shot=True)
    assert {j.params["family"] for j in zero_shot} == {ocr.ZERO_SHOT_DEV_FAMILY}
    assert {j.params["source"] for j in zero_shot} == set(ocr.ZERO_SHOT_DEV_SOURCES)
    for split, jobs in plain.items():
        assert ocr.ZERO_SHOT_DEV_FAMILY not in {j.params["family"] for j in jobs}
        assert not {j.params["source"] for j in jobs} & set(ocr.ZERO_SHOT_DEV_SOURCES)
        assert (ocr.HELD_OUT_FAMILY in {j.params["family"] for j in jobs}) == (split == "test")
    assert not {j.id for j in zero_shot} & {j.id for j in plain["dev"]}
    with pytest.raises(NekoError, match="zero-shot OCR file is a dev file"):
        ocr.plan("train", 4, seed=0, zero_shot=True)


def test_ocr_reading_survives_a_tesseract_crash_on_one_rendering(monkeypatch, tmp_path: Path):
    import subprocess

    from neko.data.builders import ocr

    def fake_tesseract(paths, scratch):
        if any(path.name == "crash.png" for path in paths):
            raise subprocess.CalledProcessError(-8, "tesseract")
        return [(path.stem, 90.0) for path in paths]

    monkeypatch.setattr(ocr, "_tesseract", fake_tesseract)
    paths = [tmp_path / "plain.png", tmp_path / "crash.png", tmp_path / "binary.png"]
    assert ocr.read_lines(paths, tmp_path) == [("plain", 90.0), None, ("binary", 90.0)]


def test_bible_markup_is_stripped():
    from neko.data.sources import _osis_to_text, modernize_spanish

    osis = (
        '<w>In</w> <w>the</w> <w>beginning</w>, <w>God</w><w>created</w> <w lemma="H1">it</w>.'
        '<milestone type="line"/>'
    )
    assert _osis_to_text(osis) == "In the beginning, God created it."
    assert modernize_spanish("EN el principio fué á la tierra") == "En el principio fue a la tierra"


def test_partial_file_is_plain_jsonl(tmp_path: Path):
    out = tmp_path / "d" / "dev.jsonl.gz"
    assert partial_path(out).name == "dev.partial.jsonl"
    run_build(out, [Job(0, "a", {"text": "One two three four."})], _echo, workers=1)
    with gzip.open(out, "rt") as handle:
        assert json.loads(handle.readline())["id"] == "a"


def test_build_all_runs_each_tasks_full_builds_in_order(monkeypatch):
    """test, dev, train, then the task's extra files: OCR's zero-shot dev file; TEC's learner files, JFLEG."""
    from typer.testing import CliRunner

    from neko.cli import _register_commands, app
    from neko.data.builders import cli as builders_cli

    calls = []
    for name in ("ocr", "tec", "jfleg"):
        monkeypatch.setattr(
            builders_cli,
            name,
            lambda name=name, **options: calls.append(
                (name, options.get("split"), options.get("zero_shot", options.get("noise")))
            ),
        )
    _register_commands()
    result = CliRunner().invoke(app, ["data", "build", "all", "--task", "ocr", "--task", "tec"])
    assert result.exit_code == 0, result.output
    assert calls == [
        ("ocr", "test", False),
        ("ocr", "dev", False),
        ("ocr", "train", False),
        ("ocr", "dev", True),
        ("tec", "test", "synthetic"),
        ("tec", "dev", "synthetic"),
        ("tec", "train", "synthetic"),
        ("tec", "test", "learner"),
        ("tec", "dev", "learner"),
        ("tec", "train", "learner"),
        ("jfleg", None, None),
    ]
    result = CliRunner().invoke(app, ["data", "build", "all", "--task", "speech"])
    assert isinstance(result.exception, NekoError) and "unknown task 'speech'" in str(result.exception)
