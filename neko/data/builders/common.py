"""What every corpus builder shares: planning, tool checks, and a resumable parallel runner.

A build is a list of `Job`s planned from the seed alone (index -> id, text, voice/font/condition),
so ids and choices never depend on worker timing. `run_build` executes the jobs that are not done
yet and appends each finished example, one flushed line at a time, to `OUT.partial.jsonl`; a killed
build loses at most the examples in flight. A rerun reads the partial file (dropping a torn last
line) and the final file if it exists, skips finished ids, and when every job is done writes the
final `.jsonl.gz` atomically and deletes the partial file.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neko.data.jsonl import read_jsonl, write_jsonl
from neko.data.schema import Example
from neko.data.sources import Sentence, sentences
from neko.data.splits import check_split_name
from neko.errors import NekoError
from neko.io import check_writable, json_line, parse_json
from neko.progress import new_progress

ZERO_SHOT_SOURCE = "fortunes"
"""The text source of no training or dev file: every task's test files hold it as a zero-shot domain."""
SOURCES = {"train": {"captions": 4, "bible": 2, "wordnet": 2, "handbook": 1}}
SOURCES["dev"] = SOURCES["train"]
SOURCES["test"] = {**SOURCES["train"], "captions": 3, ZERO_SHOT_SOURCE: 2}
"""Text sources per split and their weights in the interleaving (`interleave`), of the builders that
share them (OCR, TEC, modern ASR)."""

# Debian package of each external tool, for the one-line "install it" error.
TOOL_PACKAGES = {
    "flite": "flite",
    "sox": "sox",
    "text2wave": "festival (with festvox-us-slt-hts)",
    "tesseract": "tesseract-ocr (with tesseract-ocr-eng)",
    "apertium": "apertium (with apertium-eng-spa)",
    "diatheke": "diatheke (with sword-text-web and sword-text-sparv)",
}


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise NekoError(
                f"'{tool}' not found; install the Debian package {TOOL_PACKAGES[tool]} (see scripts/setup.sh)"
            )


@dataclass
class Job:
    """One example to build; `params` holds everything the worker needs (picklable)."""

    index: int
    id: str
    params: dict[str, Any] = field(default_factory=dict)


def job_rng(seed: int, task: str, split: str, index: int) -> random.Random:
    """The random choices of one example: a function of seed, task, split and index only."""
    return random.Random(f"{seed}/{task}/{split}/{index}")


def example_id(task: str, split: str, seed: int, index: int) -> str:
    return f"{task}-{split}-s{seed}-{index:06d}"


def interleave(weights: dict[str, int]) -> list[str]:
    """A short repeating schedule in which each name appears `weight` times, spread out."""
    slots = []
    for name, weight in weights.items():
        slots += [((k + 0.5) / weight, name) for k in range(weight)]
    return [name for _, name in sorted(slots)]


def assign_sentences(task: str, split: str, seed: int, schedule: Sequence[str], count: int) -> list[Sentence]:
    """The sentence of each index: index i takes the next unused sentence of source schedule[i % n].

    Each source's sentences of the split are shuffled once (seed, task, split); a source that runs
    out starts over. Index i's sentence does not depend on `count`, so a larger build extends a
    smaller one.
    """
    pools: dict[str, list[Sentence]] = {}
    for name in dict.fromkeys(schedule):
        pool = sentences(name, split)
        if not pool:
            raise NekoError(f"text source {name} has no {split} sentences")
        random.Random(f"{seed}/{task}/{split}/{name}").shuffle(pool)
        pools[name] = pool
    used = dict.fromkeys(pools, 0)
    chosen = []
    for index in range(count):
        name = schedule[index % len(schedule)]
        pool = pools[name]
        chosen.append(pool[used[name] % len(pool)])
        used[name] += 1
    return chosen


def sentence_jobs(
    task: str, split: str, count: int, seed: int, sources: dict[str, dict[str, int]]
) -> list[Job]:
    """The jobs of a builder whose examples need only a sentence (and seed and split for `job_rng`):
    job i takes `assign_sentences`'s sentence i, from the split's source weights in `sources`."""
    check_split_name(split)
    chosen = assign_sentences(task, split, seed, interleave(sources[split]), count)
    return [
        Job(
            i,
            example_id(task, split, seed, i),
            {"text": s.text, "text_id": s.id, "source": s.source, "seed": seed, "split": split},
        )
        for i, s in enumerate(chosen)
    ]


def partial_path(out: Path) -> Path:
    name = out.name
    for suffix in (".gz", ".jsonl"):
        name = name.removesuffix(suffix)
    return out.with_name(name + ".partial.jsonl")


def read_partial(path: Path) -> list[dict[str, Any]]:
    """Records of a partial file; a torn or corrupt tail is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records = []
    good = 0
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        if end < 0:
            break
        try:
            record = parse_json(data[position:end].decode("utf-8"), str(path))
            Example.from_dict(record)
        except (UnicodeDecodeError, NekoError):
            break
        records.append(record)
        position = good = end + 1
    if good < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good)
    return records


class _Reporter:
    """neko's progress bar on a terminal; in a log file (a background build), a line a minute: done,
    rate, time left."""

    def __init__(self, description: str, total: int, done: int) -> None:
        self.description, self.total, self.done, self.new = description, total, done, 0
        self.start = time.monotonic()
        self.last_line = self.start
        self.progress = None
        if sys.stderr.isatty():
            self.progress = new_progress()
            self.progress.start()
            self.task = self.progress.add_task(description, total=total, completed=done)
        else:
            self._line()

    def _rate(self) -> float:
        return self.new / max(time.monotonic() - self.start, 1e-9)

    def _line(self) -> None:
        rate = self._rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        print(
            f"{time.strftime('%H:%M:%S')} {self.description}: {self.done}/{self.total} "
            f"{rate:.3f} examples/s, ETA {eta / 60:.1f} min",
            file=sys.stderr,
            flush=True,
        )

    def advance(self) -> None:
        self.done += 1
        self.new += 1
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done)
        elif time.monotonic() - self.last_line > 60:
            self.last_line = time.monotonic()
            self._line()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        else:
            self._line()


# Per-process worker state: set by the pool initializer (or directly when building in-process).
_WORKER: dict[str, Any] = {}


def _init_worker(setup: Callable[[], Any] | None, work: Callable[[Any, Job], Example]) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _WORKER["state"] = setup() if setup is not None else None
    _WORKER["work"] = work


def _run_job(job: Job) -> tuple[Job, dict[str, Any] | None, str | None]:
    try:
        example = _WORKER["work"](_WORKER["state"], job)
        return job, example.to_dict(), None
    except NekoError as error:
        return job, None, str(error)
    except Exception:
        return job, None, traceback.format_exc(limit=-3)


def check_planned(out: Path, finished: dict[str, dict[str, Any]], jobs: Sequence[Job]) -> None:
    """Refuse to continue a build whose earlier examples (in OUT or its partial file) this build does
    not plan: they came from another task, split or seed (ids name all three) or a larger count, and
    merging them would mix splits or settings in one file without a word."""
    planned = {job.id for job in jobs}
    foreign = [key for key in finished if key not in planned]
    if foreign:
        raise NekoError(
            f"{out}: holds {len(foreign)} examples this build does not plan (e.g. {foreign[0]!r}: another "
            f"task, split, seed or a larger count); write to another --out, or delete {out} and "
            f"{partial_path(out).name} to rebuild"
        )


def run_build(
    out: str | Path,
    jobs: Sequence[Job],
    work: Callable[[Any, Job], Example],
    setup: Callable[[], Any] | None = None,
    workers: int | None = None,
    description: str = "build",
) -> int:
    """Build the examples of `jobs` not already in OUT or its partial file; returns the final count.

    `setup()` runs once per worker process and returns its state (a decoder, a scratch folder);
    `work(state, job)` makes one Example. A job that fails is reported and left for the next run.
    Examples already there that `jobs` does not plan are refused (`check_planned`).
    """
    out = Path(out)
    check_writable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out)
    finished: dict[str, dict[str, Any]] = {}
    if out.exists():
        for example in read_jsonl(out):
            finished[example.id] = example.to_dict()
    had_partial = partial.exists()
    for record in read_partial(partial):
        finished.setdefault(record["id"], record)
    check_planned(out, finished, jobs)
    pending = [job for job in jobs if job.id not in finished]
    reporter = _Reporter(description, len(jobs), len(jobs) - len(pending))
    failures = 0
    workers = max(1, workers or os.cpu_count() or 1)
    if pending:
        with open(partial, "a", encoding="utf-8") as sink:
            if workers == 1:
                _init_worker(setup, work)
                results = map(_run_job, pending)
                pool = None
            else:
                context = multiprocessing.get_context("fork")
                pool = context.Pool(workers, initializer=_init_worker, initargs=(setup, work))
                results = pool.imap_unordered(_run_job, pending, chunksize=1)
            try:
                for job, record, error in results:
                    if record is None:
                        failures += 1
                        print(f"{job.id}: failed: {error}", file=sys.stderr, flush=True)
                        continue
                    sink.write(json_line(record))
                    sink.flush()
                    finished[job.id] = record
                    reporter.advance()
            finally:
                if pool is not None:
                    pool.terminate()
                reporter.close()
    if failures:
        raise NekoError(f"{failures} examples failed (see above); rerun the same command to retry them")
    if pending or had_partial or not out.exists():
        order = {job.id: job.index for job in jobs}
        records = sorted(finished.values(), key=lambda r: (r["id"] in order, order.get(r["id"], 0), r["id"]))
        count = write_jsonl(out, (Example.from_dict(r) for r in records))
        partial.unlink(missing_ok=True)
        return count
    return len(finished)
