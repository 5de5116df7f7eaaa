"""`neko data build ...`: make ASR, ST, MT, OCR and TEC corpora with real recognizers on this machine.

Every build is resumable (rerun the same command), deterministic from `--seed`, and interleaves its
datasets so that a partial build covers all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import typer

from neko.errors import NekoError

build_app = typer.Typer(no_args_is_help=True, help="Build correction corpora with real recognizers.")

# Full sizes; ST and MT (absent) use every handbook sentence pair of the split.
DEFAULT_COUNTS = {
    "asr": {"train": 30000, "dev": 1000, "test": 1500},
    "ocr": {"train": 30000, "dev": 1000, "test": 1500, "zero-shot-dev": 400},
    "tec": {"train": 50000, "dev": 1000, "test": 1500},
    "tec-learner": {"train": 25000, "dev": 1000, "test": 1500},
    "modern": {"train": 30000, "dev": 1000, "test": 1500},
}

SplitOption = typer.Option("train", "--split", help="train, dev or test.")
CountOption = typer.Option(None, "--count", "--limit", help="Number of examples (default: the full size).")
OutOption = typer.Option(None, "--out", help="Output .jsonl.gz (default: data/TASK/SPLIT.jsonl.gz).")
WorkersOption = typer.Option(None, "--workers", help="Worker processes (default: all cores).")
SeedOption = typer.Option(0, "--seed", help="Seed of every choice; ids depend on it.")
JflegOutOption = typer.Option(Path("data/tec/jfleg.jsonl.gz"), "--out")
CorporaOption = typer.Option(
    None, "--corpora", help="Corpora folder (default: $NEKO_CORPORA or ../shared/corpora)."
)
HyporadiseOutOption = typer.Option(Path("data/asr"), "--out-dir", help="Folder of the three files.")
TasksOption = typer.Option(["tec", "ocr", "asr", "st", "mt"], "--task", help="Tasks to build (repeatable).")
TecWorkersOption = typer.Option(1, "--workers", help="Worker processes (cheap: 1 is enough).")


def _resolve(task: str, split: str, count: int | None, out: Path | None) -> tuple[int | None, Path]:
    """The count (None: all the text of the split) and output file of a build."""
    from neko.data.splits import check_split_name

    check_split_name(split)
    if count is None:
        count = DEFAULT_COUNTS.get(task, {}).get(split)
    elif count < 1:
        raise NekoError(f"--count must be positive, got {count}")
    return count, out or Path("data") / task / f"{split}.jsonl.gz"


def _run(
    task: str,
    split: str,
    count: int | None,
    out: Path | None,
    workers: int | None,
    plan: Callable[[int | None], list],
    work: Callable,
    setup: Callable | None,
) -> None:
    """Plan `count` jobs (`plan(count)`), run them on `workers` processes into `out`, say how many."""
    from neko.data.builders.common import run_build

    count, out = _resolve(task, split, count, out)
    total = run_build(out, plan(count), work, setup, workers, description=f"{task} {split}")
    typer.echo(f"{out}: {total} examples")


def _speech(
    task: str, split: str, count: int | None, out: Path | None, workers: int | None, seed: int
) -> None:
    from neko.data.builders import speech
    from neko.data.builders.common import require_tools

    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise NekoError("pocketsphinx is not installed; run: pip install 'pocketsphinx>=5.0'") from None
    require_tools(*speech.required_tools(task, split))
    work = speech.work_st if task == "st" else speech.work_asr
    if task == "st" and out is None:
        out = Path("data") / "st" / f"handbook-{split}.jsonl.gz"
    _run(task, split, count, out, workers, lambda n: speech.plan(task, split, n, seed), work, speech.setup)


def _ocr(
    split: str, count: int | None, out: Path | None, workers: int | None, seed: int, zero_shot: bool = False
) -> None:
    from neko.data.builders import ocr as builder
    from neko.data.builders.common import require_tools

    require_tools("tesseract")
    if zero_shot:
        count = count or DEFAULT_COUNTS["ocr"]["zero-shot-dev"]
        out = out or Path("data/ocr/zero-shot-dev.jsonl.gz")
    plan = partial(builder.plan, split, seed=seed, zero_shot=zero_shot)
    _run("ocr", split, count, out, workers, plan, builder.work, builder.setup)


def _tec(
    split: str, count: int | None, out: Path | None, workers: int | None, seed: int, noise: str = "synthetic"
) -> None:
    from neko.data.builders import tec as builder

    if noise not in builder.NOISES:
        raise NekoError(f"unknown noise {noise!r}; expected one of {', '.join(builder.NOISES)}")
    model = builder.NOISES[noise]
    if model is not builder.SYNTHETIC:
        out = out or Path("data") / "tec" / f"{noise}-{split}.jsonl.gz"
    plan = partial(builder.plan, split, seed=seed, noise=model)
    _run(builder.stream(model), split, count, out, workers, plan, builder.work, None)


def _build_command(name: str, summary: str, build: Callable[..., None], workers_option=WorkersOption):
    """Register `neko data build NAME` (split, count, out, workers, seed), which calls `build`."""

    def command(
        split: str = SplitOption,
        count: int | None = CountOption,
        out: Path | None = OutOption,
        workers: int | None = workers_option,
        seed: int = SeedOption,
    ) -> None:
        build(split, count, out, workers, seed)

    command.__doc__ = summary
    return build_app.command(name)(command)


asr = _build_command(
    "asr", "Text -> flite/festival TTS -> sox conditions -> pocketsphinx 5-best.", partial(_speech, "asr")
)
st = _build_command(
    "st",
    "Handbook English -> the ASR pipeline -> apertium eng-spa; references: the human Spanish "
    "(data/st/handbook-SPLIT.jsonl.gz; all pairs of the split unless --count).",
    partial(_speech, "st"),
)
ZeroShotOption = typer.Option(
    False,
    "--zero-shot",
    help="The zero-shot dev file (data/ocr/zero-shot-dev.jsonl.gz): a font family and text sources "
    "that no other file uses, for tuning the gate on unseen input.",
)


@build_app.command("ocr")
def ocr(
    split: str = SplitOption,
    count: int | None = CountOption,
    out: Path | None = OutOption,
    workers: int | None = WorkersOption,
    seed: int = SeedOption,
    zero_shot: bool = ZeroShotOption,
) -> None:
    """Text lines -> fonts and degradations (Pillow) -> tesseract on three renderings."""
    _ocr(split, count, out, workers, seed, zero_shot)


NoiseOption = typer.Option(
    "synthetic",
    "--noise",
    help="synthetic (data/tec/SPLIT.jsonl.gz) or learner: errors matched to JFLEG's learner English "
    "(data/tec/learner-SPLIT.jsonl.gz)",
)


@build_app.command("tec")
def tec(
    split: str = SplitOption,
    count: int | None = CountOption,
    out: Path | None = OutOption,
    workers: int | None = TecWorkersOption,
    seed: int = SeedOption,
    noise: str = NoiseOption,
) -> None:
    """Clean English with grammatical and spelling errors injected."""
    _tec(split, count, out, workers, seed, noise)


@build_app.command()
def modern(
    split: str = SplitOption,
    count: int | None = CountOption,
    out: Path | None = OutOption,
    workers: int | None = TecWorkersOption,
    seed: int = SeedOption,
) -> None:
    """Clean English as a strong modern recognizer's 5-best (data/asr/modern-SPLIT.jsonl.gz)."""
    from neko.data.builders import modern as builder
    from neko.data.builders.common import run_build
    from neko.data.builders.lexicon import pronunciation_path

    count, _ = _resolve("modern", split, count, out)
    out = out or Path("data") / "asr" / f"modern-{split}.jsonl.gz"
    pronunciation_path()  # pocketsphinx's dictionary: a one-line error before any work
    total = run_build(
        out,
        builder.plan(split, count, seed),
        builder.work,
        builder.setup,
        workers,
        description=f"modern {split}",
    )
    typer.echo(f"{out}: {total} examples")


@build_app.command()
def mt(
    split: str = SplitOption,
    count: int | None = CountOption,
    out: Path | None = OutOption,
    seed: int = SeedOption,
) -> None:
    """Handbook English -> apertium eng-spa; references: the human Spanish (all pairs unless --count)."""
    from neko.data.builders import mt as builder
    from neko.data.builders.common import require_tools
    from neko.data.jsonl import write_jsonl

    count, out = _resolve("mt", split, count, out)
    require_tools("apertium")
    total = write_jsonl(out, builder.build(builder.plan(split, seed, count), split, seed))
    typer.echo(f"{out}: {total} examples")


@build_app.command()
def jfleg(out: Path = JflegOutOption, corpora: Path | None = CorporaOption) -> None:
    """JFLEG dev (754 sentences, 4 references) as a TEC validation set; never training data."""
    from neko.data.builders.tec import jfleg_examples
    from neko.data.jsonl import write_jsonl
    from neko.data.sources import corpora_dir

    count = write_jsonl(out, jfleg_examples(corpora or corpora_dir()))
    typer.echo(f"{out}: {count} examples")


@build_app.command()
def hyporadise(
    out_dir: Path = HyporadiseOutOption,
    corpora: Path | None = CorporaOption,
) -> None:
    """HyPoradise v0 (real 5-best lists): train and dev from train_atis, the test files as they are."""
    from neko.data.builders.hyporadise import build
    from neko.data.sources import corpora_dir

    for path, count in build((corpora or corpora_dir()) / "hyporadise", out_dir).items():
        typer.echo(f"{path}: {count} examples")


@build_app.command("all")
def build_all(
    task: list[str] = TasksOption, workers: int | None = WorkersOption, seed: int = SeedOption
) -> None:
    """Every split of the given tasks at full size: test, then dev, then train, then a task's extra
    files (OCR's zero-shot dev file; TEC's learner files and JFLEG)."""
    plans = full_builds(workers, seed)
    for name in task:
        if name not in plans:
            raise NekoError(f"unknown task {name!r}; expected one of {', '.join(plans)}")
        for build_one in plans[name]:
            build_one()


def full_builds(workers: int | None, seed: int) -> dict[str, list[Callable[[], object]]]:
    """Per task, the builds of `neko data build all`, in order."""
    sized = {"count": None, "out": None, "seed": seed}
    splits = ("test", "dev", "train")
    return {
        "asr": [partial(asr, split=split, workers=workers, **sized) for split in splits],
        "st": [partial(st, split=split, workers=workers, **sized) for split in splits],
        "ocr": [
            *(partial(ocr, split=split, workers=workers, zero_shot=False, **sized) for split in splits),
            partial(ocr, split="dev", workers=workers, zero_shot=True, **sized),
        ],
        "tec": [
            *(partial(tec, split=split, workers=workers, noise="synthetic", **sized) for split in splits),
            *(partial(tec, split=split, workers=workers, noise="learner", **sized) for split in splits),
            partial(jfleg, out=Path("data/tec/jfleg.jsonl.gz"), corpora=None),
        ],
        "mt": [partial(mt, split=split, **sized) for split in splits],
    }


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from neko.cli_support import run_app

    run_app(build_app)
