"""Start-up time of a one-line `neko correct`, against the imports it cannot avoid, in one run.

The one-liner runs as a user types it (`--engine auto`: the onnx engine, no torch, when the model
has `model.onnx`) and on the torch `copy` engine, whose floor is importing torch and transformers.

Each command runs `--runs` times in a fresh interpreter from this checkout (its `neko` first on the
path), its wall time measured from here; min and median are printed (the machine may be shared, so
the min is the least disturbed). The floors show what torch and transformers cost by themselves,
loaded plainly and the way neko loads them (`neko.cli_support.start_up`: no cyclic garbage
collection while loading, what was loaded frozen); what is left above the second is neko's.
`--imports N` adds the N slowest imports of one run of the one-liner (`python -X importtime`,
cumulative, those imported directly by neko's code).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/startup.py --runs 3 --imports 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
LINE = "the cat sad on the mat\n"
ONE_LINER = ["-m", "neko.cli", "correct", "-", "--task", "asr"]
MIXTRAL = "import transformers.models.mixtral.modeling_mixtral"
AS_NEKO = "import gc; gc.disable(); {}; gc.freeze()"  # what `neko.cli_support.start_up` does
COMMANDS = {
    "python (nothing)": ["-c", "pass"],
    "import torch, transformers' Mixtral": ["-c", MIXTRAL],
    "the same, collector off, frozen (as neko)": ["-c", AS_NEKO.format(MIXTRAL)],
    "import torch, collector off, frozen": ["-c", AS_NEKO.format("import torch")],
    "neko --help": ["-m", "neko.cli", "--help"],
    'echo "the cat sad on the mat" | neko correct - --task asr': ONE_LINER,
    "the same, --engine copy (torch)": [*ONE_LINER, "--engine", "copy"],
}


def run(args: list[str], extra: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one interpreter running `args` in the checkout, the line on standard input."""
    env = os.environ | {"PYTHONPATH": str(CHECKOUT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *(extra or []), *args],
        input=LINE,
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
        env=env,
        check=True,
    )
    return time.perf_counter() - start, done


def slowest_imports(count: int) -> list[tuple[float, str]]:
    """(cumulative seconds, module) of the slowest imports of one one-liner run that no third-party
    module asked for (at depth 0 of `-X importtime`: neko imports them inside its functions)."""
    _, done = run(ONE_LINER, ["-X", "importtime"])
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):  # depth 0 has one space
            rows.append((int(cumulative) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per command")
    parser.add_argument("--imports", type=int, default=0, help="also list the N slowest imports")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'command':58} {'min s':>6} {'median s':>9}")
    for name, command in COMMANDS.items():
        seconds = [run(command)[0] for _ in range(args.runs)]
        print(f"{name:58} {min(seconds):6.2f} {statistics.median(seconds):9.2f}")
    if args.imports:
        print("\nslowest imports of one one-liner run (-X importtime, cumulative; inflated by the timing):")
        for seconds, module in slowest_imports(args.imports):
            print(f"{seconds:6.2f} {module}")


if __name__ == "__main__":
    main()
