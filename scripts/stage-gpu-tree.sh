#!/usr/bin/env bash
# Shrinks this checkout to what scripts/train-neko-small-gpu.sh reads, for the lent GPU machine, whose
# call takes at most 64 MiB of working tree (the tracked tree is larger): deletes models/, parked/,
# reports/ and every data file that configs/neko-small.yaml does not read, and cuts each file it
# reads with a `limit` to those first lines (the same examples). Tracked files only, so
#   git checkout -- .          restores it all afterwards (commit or stash your changes first).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
if [ -n "$(git status --porcelain -- models parked reports data)" ]; then
  echo "error: models/, parked/, reports/ or data/ hold changes git has not recorded (or the tree is" \
    "staged already); commit or stash them first, or restore with: git checkout -- ." >&2
  exit 2
fi
rm -rf models parked reports  # the ignored ONNX exports go too: scripts/setup.sh writes them again
"$python" - configs/neko-small.yaml <<'PY'
import gzip, subprocess, sys
from pathlib import Path

import yaml

data = yaml.safe_load(Path(sys.argv[1]).read_text())["data"]
sources = [s if isinstance(s, dict) else {"path": s} for s in data["train"] + data["dev"]]
read = {s["path"] for s in sources}
for tracked in subprocess.run(["git", "ls-files", "data"], capture_output=True, text=True).stdout.split():
    if tracked.endswith(".jsonl.gz") and tracked not in read:
        Path(tracked).unlink(missing_ok=True)
for source in sources:
    if "limit" in source:
        path = Path(source["path"])
        with gzip.open(path, "rt") as lines:
            kept = [line for _, line in zip(range(source["limit"]), lines)]
        path.write_bytes(gzip.compress("".join(kept).encode(), mtime=0))
listed = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True, text=True
).stdout.split("\0")
tree = sum(Path(name).stat().st_size for name in listed if name and Path(name).is_file())
carried = sum(p.stat().st_size for p in [*Path(".whl").rglob("*.whl"), Path("data/text/pretrain.txt.xz")] if p.is_file())
print(f"travels: {(tree + carried) / 2**20:.1f} MiB (tree {tree / 2**20:.1f}, carried .whl and the text {carried / 2**20:.1f})")
PY
