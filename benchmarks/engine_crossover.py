"""Where the onnx engine stops paying: whole `neko correct` commands on 1 to N inputs, in one run.

The onnx engine starts without torch (well under a second, against seconds for importing torch and
transformers) but corrects more slowly on large inputs (no KV cache, every expert on every token).
For each data file and input size, `neko correct FILE --engine E --quiet` runs `--runs` times in a
fresh interpreter per engine (`onnx` and `copy`), on the first N examples, its wall time measured
from here (interpreter start to exit; min and median, the machine may be shared); the outputs of the
two engines are compared. `neko.correct.engines.ONNX_MOST_INPUTS` (what `--engine auto` uses) should
sit near the sizes where the two times cross.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/engine_crossover.py --runs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
DATA = ("data/asr/test.jsonl.gz", "data/tec/test.jsonl.gz")
ENGINES = ("onnx", "copy")


def first_examples(path: str, count: int, folder: Path) -> Path:
    """The first `count` lines of a JSONL data file, as a file of their own."""
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(CHECKOUT / path, "rt", encoding="utf-8") as source:
        lines = [line for _, line in zip(range(count), source, strict=False)]
    target = folder / f"{Path(path).name.split('.')[0]}-{count}.jsonl"
    target.write_text("".join(lines), encoding="utf-8")
    return target


def timed(args: list[str]) -> tuple[float, str]:
    env = os.environ | {"PYTHONPATH": str(CHECKOUT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "neko.cli", *args],
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
        env=env,
        check=True,
    )
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="model directory or name (default: the default)")
    parser.add_argument("--data", nargs="+", default=list(DATA))
    parser.add_argument("--sizes", default="1,4,16,64", help="input sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"model {args.model}; {args.runs} runs per command; wall seconds, min / median")
    print(f"{'data':28} {'inputs':>6} {'onnx':>13} {'copy':>13} {'copy/onnx':>9} {'same':>5}")
    with tempfile.TemporaryDirectory() as folder:
        for path in args.data:
            for size in sizes:
                subset = first_examples(path, size, Path(folder))
                times, outputs = {}, {}
                for engine in ENGINES:
                    command = ["correct", str(subset), "--model", args.model, "--engine", engine, "--quiet"]
                    found = [timed(command) for _ in range(args.runs)]
                    times[engine] = [seconds for seconds, _ in found]
                    outputs[engine] = found[0][1]
                cells = {e: f"{min(t):.2f} / {statistics.median(t):.2f}" for e, t in times.items()}
                ratio = min(times["copy"]) / min(times["onnx"])
                same = "yes" if outputs["onnx"] == outputs["copy"] else "no"
                print(f"{path:28} {size:6} {cells['onnx']:>13} {cells['copy']:>13} {ratio:9.2f} {same:>5}")


if __name__ == "__main__":
    main()
